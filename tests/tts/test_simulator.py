"""The simulated Riva server on its own, through the client library's stubs."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterable

import grpc
import numpy as np
import pytest
import soundfile
from riva.client.proto import riva_tts_pb2, riva_tts_pb2_grpc

from bastion.simulator.faults import INTERNAL_DETAIL
from bastion.simulator.riva import RivaSimulator
from bastion.simulator.riva.encode import alaw, alaw_decode, mulaw, mulaw_decode
from bastion.simulator.riva.speech import tone_frames


@pytest.fixture
async def stub(riva: RivaSimulator) -> AsyncIterator[riva_tts_pb2_grpc.RivaSpeechSynthesisStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{riva.port}") as channel:
        yield riva_tts_pb2_grpc.RivaSpeechSynthesisStub(channel)


def request(**changes: object) -> riva_tts_pb2.SynthesizeSpeechRequest:
    fields: dict[str, object] = {
        "text": "Simulated speech.",
        "language_code": "en-US",
        "encoding": 1,
        "sample_rate_hz": 16000,
        "voice_name": "English-US.Male-1",
    }
    fields.update(changes)
    return riva_tts_pb2.SynthesizeSpeechRequest(**fields)


async def test_config_lists_the_four_default_languages(
    stub: riva_tts_pb2_grpc.RivaSpeechSynthesisStub,
) -> None:
    config = await stub.GetRivaSynthesisConfig(riva_tts_pb2.RivaSynthesisConfigRequest())
    found = {m.parameters["language_code"]: m for m in config.model_config}
    assert set(found) == {"en-US", "de-DE", "es-ES", "it-IT"}
    assert found["en-US"].parameters["voice_name"] == "English-US.Female-1"
    assert found["de-DE"].parameters["simulated"] == "true"
    assert found["it-IT"].model_name.startswith("bastion-simulator-")


async def test_synthesize_online_streams_the_same_audio(
    stub: riva_tts_pb2_grpc.RivaSpeechSynthesisStub,
) -> None:
    text = "A longer text, so that the audio comes in several chunks. " * 3
    whole = await stub.Synthesize(request(text=text))
    chunks = [r.audio async for r in stub.SynthesizeOnline(iter([request(text=text)]))]
    assert len(chunks) > 1
    assert b"".join(chunks) == whole.audio
    assert len(whole.audio) == 2 * tone_frames(len(text), 16000)


@pytest.mark.parametrize(
    "changes",
    [
        {"voice_name": "Nobody.Female-9"},
        {"language_code": "xx-XX"},
        {"text": ""},
        {"encoding": 0},
        {"encoding": 4, "sample_rate_hz": 22050},
        {"sample_rate_hz": 0},
    ],
)
async def test_invalid_requests_are_invalid_argument(
    stub: riva_tts_pb2_grpc.RivaSpeechSynthesisStub, changes: dict[str, object]
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Synthesize(request(**changes))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert INTERNAL_DETAIL in (caught.value.details() or "")


async def test_the_error_fault_answers_the_chosen_status(
    riva: RivaSimulator, stub: riva_tts_pb2_grpc.RivaSpeechSynthesisStub
) -> None:
    riva.options.fault = "error"
    riva.options.fault_status = "RESOURCE_EXHAUSTED"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Synthesize(request())
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    riva.options.fault_rate = 0.0
    assert (await stub.Synthesize(request())).audio


async def test_the_stall_fault_holds_until_the_deadline(
    riva: RivaSimulator, stub: riva_tts_pb2_grpc.RivaSpeechSynthesisStub
) -> None:
    riva.options.fault = "stall"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Synthesize(request(), timeout=0.2)
    assert caught.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED


@pytest.mark.parametrize("encoding", [2, 4])
async def test_containers_decode(
    stub: riva_tts_pb2_grpc.RivaSpeechSynthesisStub, encoding: int
) -> None:
    reply = await stub.Synthesize(request(encoding=encoding, sample_rate_hz=24000))
    samples, rate = soundfile.read(io.BytesIO(reply.audio), dtype="int16")
    assert rate == 24000
    assert len(samples) == tone_frames(len("Simulated speech."), 24000)


def _all_samples() -> np.ndarray[tuple[int], np.dtype[np.int16]]:
    return np.arange(-32768, 32768, dtype=np.int32).astype(np.int16)


def _codes(values: Iterable[int]) -> bytes:
    return bytes(values)


def test_g711_reference_values() -> None:
    """G.711 code points as the reference C implementation (and CPython's old ``audioop``)
    gives them: silence, the smallest negative value, the extremes and a mid value."""
    values = np.array([0, -1, 32767, -32768, 1000], dtype=np.int16)
    assert mulaw(values) == _codes([0xFF, 0x7E, 0x80, 0x00, 0xCE])
    assert alaw(values) == _codes([0xD5, 0x55, 0xAA, 0x2A, 0xFA])
    assert mulaw_decode(b"\xff\x00").tolist() == [0, -32124]
    assert alaw_decode(b"\xd5\x2a").tolist() == [8, -32256]


def test_g711_round_trip_error_is_within_one_step() -> None:
    samples = _all_samples().astype(np.int32)
    for encode, decode, step in ((mulaw, mulaw_decode, 1024), (alaw, alaw_decode, 1024)):
        back = decode(encode(samples.astype(np.int16))).astype(np.int32)
        assert np.abs(back - samples).max() <= step
        # companding keeps small signals fine-grained
        small = np.abs(samples) < 256
        assert np.abs(back - samples)[small].max() <= 16

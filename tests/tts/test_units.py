"""Pure pieces: Accept negotiation, the WAV header, gRPC targets and status mapping."""

from __future__ import annotations

import io
import wave

import grpc
import pytest

from bastion.gateway.audio_format import FORMATS, prefers_wav, wav_file
from bastion.upstream.riva import RivaRejectedError, attempt_error, target_of

PCM, FLAC, MULAW = FORMATS[1], FORMATS[2], FORMATS[3]


@pytest.mark.parametrize(
    ("accept", "wanted"),
    [
        (None, False),
        ("*/*", False),
        ("audio/pcm", False),
        ("audio/wav", True),
        ("audio/x-wav", True),
        ("audio/wave;q=0.9, */*;q=0.1", True),
        ("audio/pcm, audio/wav;q=0.5", False),
        ("audio/wav;q=0.8, audio/pcm;q=0.8", True),
        ("audio/wav;q=0", False),
        ("Audio/WAV", True),
    ],
)
def test_accept_negotiation(accept: str | None, wanted: bool) -> None:
    assert prefers_wav(accept, PCM) is wanted


def test_containers_are_never_wrapped() -> None:
    assert prefers_wav("audio/wav", FLAC) is False
    with pytest.raises(ValueError, match="cannot be wrapped"):
        wav_file(b"fLaC", FLAC, 16000)


def test_wav_header_for_pcm() -> None:
    audio = bytes(range(200)) * 2
    data = wav_file(audio, PCM, 12000)
    assert len(data) == 44 + len(audio)
    with wave.open(io.BytesIO(data)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 12000)
        assert wav.readframes(wav.getnframes()) == audio


def test_wav_header_for_odd_mulaw_is_padded() -> None:
    data = wav_file(b"\xff" * 3, MULAW, 8000)
    assert data[:4] == b"RIFF"
    assert int.from_bytes(data[4:8], "little") == len(data) - 8
    assert len(data) % 2 == 0


@pytest.mark.parametrize(
    ("url", "target", "tls"),
    [
        ("grpc://riva.internal:50051", "riva.internal:50051", False),
        ("grpc://riva.internal", "riva.internal:50051", False),
        ("grpcs://grpc.nvcf.nvidia.com", "grpc.nvcf.nvidia.com:443", True),
        ("grpcs://[::1]:8443", "[::1]:8443", True),
    ],
)
def test_targets(url: str, target: str, tls: bool) -> None:
    assert target_of(url) == (target, tls)


class _Failure(grpc.aio.AioRpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        super().__init__(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details="secret text")


@pytest.mark.parametrize(
    ("code", "retryable"),
    [
        (grpc.StatusCode.UNAVAILABLE, True),
        (grpc.StatusCode.DEADLINE_EXCEEDED, True),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, True),
        (grpc.StatusCode.INTERNAL, True),
        (grpc.StatusCode.INVALID_ARGUMENT, False),
        (grpc.StatusCode.NOT_FOUND, False),
    ],
)
def test_status_mapping(code: grpc.StatusCode, retryable: bool) -> None:
    error = attempt_error(_Failure(code))
    assert error.retryable is retryable
    assert isinstance(error, RivaRejectedError) is (not retryable)
    assert code.name in error.reason
    assert "secret text" not in error.reason

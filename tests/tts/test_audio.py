"""The bytes and headers a client gets for each encoding, decoded and measured."""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest
import soundfile

from bastion.simulator.riva.encode import alaw_decode, mulaw_decode
from bastion.simulator.riva.speech import tone_frames
from tests.support.harness import Stack
from tests.tts.support import speech, tts

TEXT = "Hello from Bastion."
RATE_HEADERS = ("x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-request-id")


def frames_of(text: str, rate: int) -> int:
    return tone_frames(len(text), rate)


@pytest.mark.parametrize("rate", [8000, 22050, 44100])
async def test_linear_pcm_is_raw_16_bit_mono_at_the_asked_rate(stack: Stack, rate: int) -> None:
    _, key = await stack.account_and_key()
    reply = await tts(stack, key, speech(text=TEXT, encoding=1, sample_rate_hz=rate))
    assert reply.status == 200
    assert reply.content_type == "audio/pcm"
    assert reply.headers["X-Sample-Rate"] == str(rate)
    assert reply.headers["X-Audio-Encoding"] == "LINEAR_PCM"
    for name in RATE_HEADERS:
        assert name in reply.headers
    assert len(reply.body) == 2 * frames_of(TEXT, rate)  # 60 ms per character, 2 bytes each
    samples = np.frombuffer(reply.body, dtype="<i2")
    assert np.abs(samples).max() > 1000  # a signal, not silence


async def test_accept_wav_wraps_pcm_in_a_playable_wav_file(stack: Stack) -> None:
    _, key = await stack.account_and_key()
    reply = await tts(
        stack, key, speech(text=TEXT, sample_rate_hz=16000), headers={"Accept": "audio/wav"}
    )
    assert reply.status == 200
    assert reply.content_type == "audio/wav"
    assert reply.headers["X-Sample-Rate"] == "16000"
    with wave.open(io.BytesIO(reply.body)) as wav:
        assert wav.getnchannels() == 1
        assert wav.getsampwidth() == 2
        assert wav.getframerate() == 16000
        assert wav.getnframes() == frames_of(TEXT, 16000)
    assert len(reply.body) == 44 + 2 * frames_of(TEXT, 16000)


async def test_raw_pcm_is_kept_when_the_client_prefers_it(stack: Stack) -> None:
    _, key = await stack.account_and_key()
    reply = await tts(stack, key, speech(), headers={"Accept": "audio/pcm, audio/wav;q=0.5"})
    assert reply.content_type == "audio/pcm"


@pytest.mark.parametrize(
    ("encoding", "content_type", "decode"),
    [(3, "audio/PCMU", mulaw_decode), (20, "audio/PCMA", alaw_decode)],
)
async def test_g711_is_one_byte_per_sample(
    stack: Stack, encoding: int, content_type: str, decode: object
) -> None:
    _, key = await stack.account_and_key()
    reply = await tts(stack, key, speech(text=TEXT, encoding=encoding, sample_rate_hz=8000))
    assert reply.status == 200
    assert reply.content_type == content_type
    assert reply.headers["X-Sample-Rate"] == "8000"
    assert len(reply.body) == frames_of(TEXT, 8000)
    assert callable(decode)
    assert np.abs(decode(reply.body).astype(np.int32)).max() > 1000

    wrapped = await tts(
        stack,
        key,
        speech(text=TEXT, encoding=encoding, sample_rate_hz=8000),
        headers={"Accept": "audio/wav"},
    )
    assert wrapped.content_type == "audio/wav"
    info = soundfile.info(io.BytesIO(wrapped.body))
    assert info.samplerate == 8000
    assert info.frames == frames_of(TEXT, 8000)
    assert info.subtype == ("ULAW" if encoding == 3 else "ALAW")


async def test_flac_decodes_to_the_asked_rate_and_length(stack: Stack) -> None:
    _, key = await stack.account_and_key()
    reply = await tts(
        stack,
        key,
        speech(text=TEXT, encoding=2, sample_rate_hz=32000),
        headers={"Accept": "audio/wav"},  # FLAC is a container already: served as is
    )
    assert reply.status == 200
    assert reply.content_type == "audio/flac"
    assert reply.body[:4] == b"fLaC"
    samples, rate = soundfile.read(io.BytesIO(reply.body), dtype="int16")
    assert rate == 32000
    assert len(samples) == frames_of(TEXT, 32000)


@pytest.mark.parametrize("rate", [16000, 48000])
async def test_ogg_opus_decodes_to_the_asked_rate_and_length(stack: Stack, rate: int) -> None:
    _, key = await stack.account_and_key()
    reply = await tts(stack, key, speech(text=TEXT, encoding=4, sample_rate_hz=rate))
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "audio/ogg; codecs=opus"
    assert reply.body[:4] == b"OggS"
    samples, decoded_rate = soundfile.read(io.BytesIO(reply.body), dtype="int16")
    assert decoded_rate == rate
    assert len(samples) == frames_of(TEXT, rate)

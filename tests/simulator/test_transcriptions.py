"""POST /v1/audio/transcriptions (multipart)."""

from __future__ import annotations

import io
import wave
from collections.abc import AsyncIterator

import aiohttp
import openai
import orjson
import pytest

from bastion.simulator.transcriptions import MAX_UPLOAD

from .harness import Simulator
from .schemas import validate


def wav(seconds: float, rate: int = 16_000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(rate)
        audio.writeframes(b"\0\0" * int(seconds * rate))
    return buffer.getvalue()


async def test_json_default(client: openai.AsyncOpenAI) -> None:
    audio = wav(1.5)
    raw = await client.audio.transcriptions.with_raw_response.create(
        model="whisper-large-v3", file=("hello.wav", audio, "audio/wav"), language="de"
    )
    body = orjson.loads(raw.content)
    validate(body, "CreateTranscriptionResponseJson")
    assert body["text"].startswith("[simulated]")
    assert str(len(audio)) in body["text"]
    assert body["language"] == "de"
    assert body["usage"] == {"type": "duration", "seconds": 2}


async def test_verbose_json_reads_the_wav_header(client: openai.AsyncOpenAI) -> None:
    raw = await client.audio.transcriptions.with_raw_response.create(
        model="whisper-large-v3-turbo",
        file=("a.wav", wav(2.25, rate=8000), "audio/wav"),
        response_format="verbose_json",
        temperature=0.2,
        prompt="context",
    )
    body = orjson.loads(raw.content)
    validate(body, "CreateTranscriptionResponseVerboseJson")
    assert body["task"] == "transcribe"
    assert body["duration"] == pytest.approx(2.25)
    assert body["language"] == "en"
    assert body["segments"][0]["end"] == pytest.approx(2.25)
    assert body["segments"][0]["temperature"] == pytest.approx(0.2)
    assert body["usage"] == {"type": "duration", "seconds": 3}


async def test_text_format(client: openai.AsyncOpenAI) -> None:
    text = await client.audio.transcriptions.create(
        model="whisper-large-v3", file=("a.wav", wav(0.5), "audio/wav"), response_format="text"
    )
    assert isinstance(text, str)
    assert text.startswith("[simulated]")


async def test_non_wav_duration_is_estimated_from_size(
    simulator: Simulator, http: aiohttp.ClientSession
) -> None:
    form = aiohttp.FormData()
    form.add_field("model", "whisper-large-v3")
    form.add_field("response_format", "verbose_json")
    form.add_field("file", b"\xff\xfb" * 16_000, filename="a.mp3", content_type="audio/mpeg")
    async with http.post(f"{simulator.url}/v1/audio/transcriptions", data=form) as response:
        body = await response.json()
    assert body["duration"] == pytest.approx(2.0)


@pytest.mark.parametrize(("fmt", "first_line"), [("srt", "1"), ("vtt", "WEBVTT")])
async def test_subtitle_formats(
    simulator: Simulator, http: aiohttp.ClientSession, fmt: str, first_line: str
) -> None:
    form = aiohttp.FormData()
    form.add_field("model", "whisper-large-v3")
    form.add_field("response_format", fmt)
    form.add_field("file", wav(1.0), filename="a.wav")
    async with http.post(f"{simulator.url}/v1/audio/transcriptions", data=form) as response:
        assert response.status == 200
        assert (await response.text()).splitlines()[0] == first_line


@pytest.mark.parametrize(
    ("fields", "with_file", "param"),
    [
        ({}, True, "model"),
        ({"model": "whisper-large-v3"}, False, "file"),
        ({"model": "whisper-large-v3", "response_format": "xml"}, True, "response_format"),
        ({"model": "whisper-large-v3", "temperature": "hot"}, True, "temperature"),
    ],
)
async def test_bad_requests(
    simulator: Simulator,
    http: aiohttp.ClientSession,
    fields: dict[str, str],
    with_file: bool,
    param: str,
) -> None:
    form = aiohttp.FormData(default_to_multipart=True)
    for name, value in fields.items():
        form.add_field(name, value)
    if with_file:
        form.add_field("file", wav(0.1), filename="a.wav")
    async with http.post(f"{simulator.url}/v1/audio/transcriptions", data=form) as response:
        assert response.status == 400
        error = await response.json()
    assert error["error"]["param"] == param


async def test_json_body_is_400(simulator: Simulator, http: aiohttp.ClientSession) -> None:
    async with http.post(
        f"{simulator.url}/v1/audio/transcriptions", json={"model": "m"}
    ) as response:
        assert response.status == 400


async def test_upload_over_25_mib_is_413(simulator: Simulator, http: aiohttp.ClientSession) -> None:
    # Sent chunked, without a Content-Length, so the cap must hold while the body streams.
    async def body() -> AsyncIterator[bytes]:
        boundary = b"--xyz\r\n"
        yield boundary + b'Content-Disposition: form-data; name="model"\r\n\r\nw\r\n'
        yield boundary + (
            b'Content-Disposition: form-data; name="file"; filename="big.wav"\r\n'
            b"Content-Type: application/octet-stream\r\n\r\n"
        )
        block = b"\0" * (1024 * 1024)
        for _ in range(MAX_UPLOAD // len(block) + 1):
            yield block
        yield b"\r\n--xyz--\r\n"

    async with http.post(
        f"{simulator.url}/v1/audio/transcriptions",
        data=body(),
        headers={"Content-Type": "multipart/form-data; boundary=xyz"},
    ) as response:
        assert response.status == 413
        error = await response.json()
    assert error["error"]["code"] == "request_entity_too_large"
    entries = await simulator.journal(http)
    assert entries[-1]["body"]["file"]["size"] > MAX_UPLOAD
    assert entries[-1]["body"]["fields"] == {"model": "w"}

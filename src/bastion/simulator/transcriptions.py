"""POST /v1/audio/transcriptions: multipart upload read as a stream, capped at 25 MiB."""

from __future__ import annotations

import io
import math
import wave
from typing import Any

from aiohttp import BodyPartReader, web

from bastion.simulator.call import Call
from bastion.simulator.errors import SimulatorError, invalid
from bastion.simulator.replies import json_response

MAX_UPLOAD = 25 * 1024 * 1024
MAX_FIELD = 64 * 1024  # a form field other than the file
HEAD_BYTES = 64 * 1024  # kept from the upload to read a WAV header; the rest is only counted
CHUNK = 64 * 1024
BYTES_PER_SECOND_GUESS = 16_000  # duration of a non-WAV upload: about 128 kbit/s audio
FORMATS = ("json", "text", "verbose_json", "srt", "vtt")


def _too_large() -> SimulatorError:
    return SimulatorError(
        f"audio file is larger than {MAX_UPLOAD} bytes",
        status=413,
        code="request_entity_too_large",
        param="file",
    )


def wav_duration(head: bytes, size: int) -> float | None:
    """Seconds of a PCM WAV from its header, or None if `head` is not a readable WAV.

    The frame count is capped by what the upload holds, for headers that claim more.
    """
    if not (head.startswith(b"RIFF") and head[8:12] == b"WAVE"):
        return None
    try:
        with wave.open(io.BytesIO(head), "rb") as audio:
            frames, rate = audio.getnframes(), audio.getframerate()
            frame_bytes = audio.getsampwidth() * audio.getnchannels()
    except (wave.Error, EOFError, ValueError):
        return None
    if rate <= 0 or frame_bytes <= 0:
        return None
    return min(frames, size // frame_bytes) / rate


async def _read_file(part: BodyPartReader, file: dict[str, Any]) -> bytes:
    head = bytearray()
    size = 0
    while chunk := await part.read_chunk(CHUNK):
        size += len(chunk)
        file["size"] = size
        if size > MAX_UPLOAD:
            raise _too_large()
        if len(head) < HEAD_BYTES:
            head += chunk[: HEAD_BYTES - len(head)]
    return bytes(head)


async def _read_field(part: BodyPartReader, name: str) -> str:
    value = bytearray()
    while chunk := await part.read_chunk(CHUNK):
        value += chunk
        if len(value) > MAX_FIELD:
            raise invalid(f"form field '{name}' is longer than {MAX_FIELD} bytes", name)
    return value.decode("utf-8", "replace")


def _timestamp(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


async def create(call: Call) -> web.StreamResponse:
    request = call.request
    if request.content_type != "multipart/form-data":
        raise invalid("body must be multipart/form-data")
    if request.content_length is not None and request.content_length > MAX_UPLOAD + CHUNK:
        raise _too_large()  # refused before reading: the upload cannot fit
    fields: dict[str, str] = {}
    file: dict[str, Any] = {}
    call.entry["body"] = {"fields": fields, "file": None}  # filled as parts arrive
    head = b""
    try:
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                raise invalid("nested multipart bodies are not supported")
            name = part.name or ""
            if name == "file":
                file.update(filename=part.filename, size=0)
                call.entry["body"]["file"] = file
                head = await _read_file(part, file)
            elif name:
                fields[name] = await _read_field(part, name)
    except ValueError as exc:  # aiohttp's word for a malformed multipart body
        raise invalid(f"malformed multipart body: {exc}") from None

    if not fields.get("model"):
        raise invalid("'model' is required", "model")
    if not file:
        raise invalid("'file' is required", "file")
    response_format = fields.get("response_format") or "json"
    if response_format not in FORMATS:
        raise invalid(f"'response_format' must be one of {', '.join(FORMATS)}", "response_format")
    try:
        temperature = float(fields.get("temperature") or 0.0)
    except ValueError:
        raise invalid("'temperature' must be a number", "temperature") from None
    language = fields.get("language") or "en"

    size: int = file["size"]
    duration = wav_duration(head, size)
    if duration is None:
        duration = size / BYTES_PER_SECOND_GUESS
    text = (
        f"[simulated] Transcription of {size} bytes of audio ({duration:.2f} s)"
        " by the Bastion simulator; no speech recognition was run."
    )
    usage = {"type": "duration", "seconds": math.ceil(duration)}

    if response_format == "text":
        return web.Response(text=text + "\n", content_type="text/plain")
    if response_format == "srt":
        cue = f"{_timestamp(0, ',')} --> {_timestamp(duration, ',')}"
        return web.Response(text=f"1\n{cue}\n{text}\n\n", content_type="text/plain")
    if response_format == "vtt":
        cue = f"{_timestamp(0, '.')} --> {_timestamp(duration, '.')}"
        return web.Response(text=f"WEBVTT\n\n{cue}\n{text}\n\n", content_type="text/vtt")
    if response_format == "verbose_json":
        words = text.split()
        segment = {
            "id": 0,
            "seek": 0,
            "start": 0.0,
            "end": duration,
            "text": " " + text,
            "tokens": [50364 + index for index in range(len(words))],
            "temperature": temperature,
            "avg_logprob": -0.25,
            "compression_ratio": 1.0,
            "no_speech_prob": 0.01,
        }
        return json_response(
            {
                "task": "transcribe",
                "language": language,
                "duration": duration,
                "text": text,
                "segments": [segment],
                "usage": usage,
            }
        )
    return json_response({"text": text, "language": language, "usage": usage})

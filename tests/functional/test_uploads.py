"""Transcription uploads: the 25 MB cap counted on bytes received (chunked uploads included),
413 without the upstream ever hearing of it and without holding the body in memory, and
valid uploads streamed on to the upstream."""

from __future__ import annotations

import asyncio
import io
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from tests.support.conformance import assert_error, call, journal_for, wav_bytes
from tests.support.harness import Stack

CAP = 25 * 1024 * 1024  # the shipped example's max_upload_bytes
CHUNK = 64 * 1024
PATH = "/v1/audio/transcriptions"
BOUNDARY = "bastion-test-boundary"


def _head(fields: dict[str, str], filename: str = "big.wav") -> bytes:
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ]
    parts.append(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    )
    return "".join(parts).encode()


TAIL = f"\r\n--{BOUNDARY}--\r\n".encode()


async def _multipart(
    file_head: bytes, file_size: int, fields: dict[str, str]
) -> AsyncIterator[bytes]:
    """A multipart body generated chunk by chunk (sent with chunked transfer encoding)."""
    yield _head(fields)
    yield file_head
    left = file_size - len(file_head)
    while left > 0:
        size = min(CHUNK, left)
        yield bytes(size)
        left -= size
    yield TAIL


def _headers(key: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {key}",
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
    }


async def test_oversize_chunked_upload_is_413_without_buffering(stack: Stack) -> None:
    account_id, key = await stack.account_and_key()
    size = CAP + 4 * CHUNK
    tracemalloc.start()
    try:
        async with stack.http.post(
            stack.url + PATH,
            data=_multipart(wav_bytes(0.1)[:44], size, {"model": "whisper-large-v3"}),
            headers=_headers(key),
        ) as response:
            status, body = response.status, await response.read()
            transfer = response.request_info.headers.get("Transfer-Encoding")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status == 413, body
    assert transfer == "chunked"
    error = orjson.loads(body)["error"]
    assert error["code"] == "request_entity_too_large"
    assert error["type"] == "invalid_request_error"
    # the gateway (and this test's client) never held anything near the upload's size
    assert peak < 8 * 1024 * 1024, peak
    assert await journal_for(stack, PATH) == []
    assert await stack.runtime.admission_store.open_holds(account_id) == 0


async def test_oversize_announced_upload_is_refused_before_reading(stack: Stack) -> None:
    """Content-Length over the cap: 413 at once, before a byte of the body is sent."""
    _, key = await stack.account_and_key()
    host, port = stack.server.bound[0]
    reader, writer = await asyncio.open_connection(host, port)
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {CAP * 2}\r\n\r\n"
    )
    writer.write(head.encode())
    await writer.drain()
    async with asyncio.timeout(10):  # a guard against hanging, not a timing assertion
        status_line = await reader.readline()
        raw = await reader.read(64 * 1024)
    writer.close()
    assert status_line.startswith(b"HTTP/1.1 413"), status_line
    assert b"request_entity_too_large" in raw
    assert b"x-request-id" in raw.lower()
    assert await journal_for(stack, PATH) == []


async def test_oversize_upload_by_the_sdk_shape(stack: Stack) -> None:
    """A plain (non-chunked) upload over the cap, as an SDK would send it."""
    _, key = await stack.account_and_key()
    form = aiohttp.FormData()
    form.add_field("model", "whisper-large-v3")
    form.add_field("file", io.BytesIO(bytes(CAP + 1)), filename="big.wav", content_type="audio/wav")
    reply = await call(stack, "POST", PATH, key=key, data=form)
    assert_error(reply, 413, "request_entity_too_large")
    assert await journal_for(stack, PATH) == []


async def test_upload_at_the_cap_is_streamed_to_the_upstream(stack: Stack) -> None:
    account_id, key = await stack.account_and_key()
    audio = wav_bytes(seconds=2.0)
    fields = {
        "model": "whisper-large-v3-turbo",
        "language": "de",
        "prompt": "Grüße",
        "temperature": "0.2",
        "response_format": "verbose_json",
    }
    tracemalloc.start()
    try:
        async with stack.http.post(
            stack.url + PATH, data=_multipart(audio[:44], CAP, fields), headers=_headers(key)
        ) as response:
            status, body = response.status, await response.read()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status == 200, body
    assert peak < 8 * 1024 * 1024, peak
    [sent] = await journal_for(stack, PATH)
    assert sent["body"]["file"]["size"] == CAP
    assert sent["body"]["file"]["filename"] == "big.wav"
    assert sent["body"]["fields"] == fields
    await stack.settled()
    [charge] = await stack.runtime.db.ledger.entries(account_id, kinds=("charge",))
    assert charge["usage"]["audio_ms"] > 0


async def test_form_fields_reach_the_upstream_in_order(stack: Stack) -> None:
    _, key = await stack.account_and_key()
    form = aiohttp.FormData()
    for name, value in [("model", "whisper-large-v3"), ("language", "fr"), ("x_custom", "kept")]:
        form.add_field(name, value)
    form.add_field("file", wav_bytes(0.3), filename="clip.wav", content_type="audio/wav")
    reply = await call(stack, "POST", PATH, key=key, data=form)
    assert reply.status == 200, reply.body
    assert reply.json()["language"] == "fr"
    [sent] = await journal_for(stack, PATH)
    assert list(sent["body"]["fields"]) == ["model", "language", "x_custom"]
    assert sent["body"]["file"]["filename"] == "clip.wav"


async def test_transcription_response_formats_raw(stack: Stack) -> None:
    _, key = await stack.account_and_key()
    results: dict[str, Any] = {}
    for response_format in ("json", "text", "verbose_json"):
        form = aiohttp.FormData()
        form.add_field("model", "whisper-large-v3")
        form.add_field("response_format", response_format)
        form.add_field("file", wav_bytes(0.5), filename="a.wav", content_type="audio/wav")
        reply = await call(stack, "POST", PATH, key=key, data=form)
        assert reply.status == 200
        results[response_format] = (reply.headers["Content-Type"], reply.body)
    assert results["json"][0].startswith("application/json")
    assert results["text"][0].startswith("text/plain")
    assert results["verbose_json"][0].startswith("application/json")
    assert set(orjson.loads(results["json"][1])) >= {"text", "language"}


async def test_a_form_of_too_many_fields_is_refused(stack: Stack) -> None:
    """Tiny parts cost the client a few bytes each and the gateway a string each: past the
    cap the upload is a 400, nothing reached the upstream and nothing is held."""
    from bastion.http.routes.audio import FIELD_COUNT_LIMIT

    account_id, key = await stack.account_and_key()
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="x{n}"\r\n\r\n\r\n'
        for n in range(FIELD_COUNT_LIMIT + 1)
    ]
    body = "".join(parts).encode() + _head({"model": "whisper-large-v3"}) + wav_bytes(0.1) + TAIL
    reply = await call(stack, "POST", PATH, key=key, data=body, headers=_headers(key))
    error = assert_error(reply, 400, "invalid_request")
    assert str(FIELD_COUNT_LIMIT) in error["message"]
    assert await journal_for(stack, PATH) == []
    assert await stack.runtime.admission_store.open_holds(account_id) == 0
    # at the cap the form is still taken
    body = "".join(parts[: FIELD_COUNT_LIMIT - 1]).encode()
    body += _head({"model": "whisper-large-v3"}) + wav_bytes(0.1) + TAIL
    reply = await call(stack, "POST", PATH, key=key, data=body, headers=_headers(key))
    assert reply.status == 200, reply.body

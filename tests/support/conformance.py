"""Helpers for the conformance tests: raw HTTP calls, SSE parsing, the error envelope, audio.

Nothing here asserts a duration: waits are bounded polls on observable state.
"""

from __future__ import annotations

import asyncio
import io
import struct
import wave
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from multidict import CIMultiDictProxy

from tests.support.harness import Stack

ENVELOPE_KEYS = {"message", "type", "code"}

ERROR_TYPES = {
    "invalid_request": "invalid_request_error",
    "model_not_found": "invalid_request_error",
    "invalid_api_key": "invalid_request_error",
    "not_found": "invalid_request_error",
    "method_not_allowed": "invalid_request_error",
    "request_entity_too_large": "invalid_request_error",
    "rate_limit_exceeded": "rate_limit_error",
    "insufficient_funds": "insufficient_quota",
    "spend_cap_exceeded": "insufficient_quota",
    "upstream_error": "api_error",
    "service_unavailable": "api_error",
}

INTERNAL_DETAIL = "SIMULATED-UPSTREAM-INTERNAL-DETAIL"


@dataclass
class Reply:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


async def call(
    stack: Stack,
    method: str,
    path: str,
    *,
    key: str | None = None,
    json: Any = None,
    data: Any = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """One raw HTTP request to the gateway (redirects not followed); the whole body is read."""
    sent = dict(headers or {})
    if key is not None:
        sent["Authorization"] = f"Bearer {key}"
    async with stack.http.request(
        method, stack.url + path, json=json, data=data, headers=sent, allow_redirects=False
    ) as response:
        return Reply(response.status, response.headers, await response.read())


def assert_error(reply: Reply, status: int, code: str) -> dict[str, Any]:
    """The exact envelope ``{"error": {"message", "type", "code"}}`` with the table's type."""
    assert reply.status == status, reply.body
    assert reply.headers["Content-Type"].startswith("application/json")
    assert "x-request-id" in reply.headers
    body = reply.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == ENVELOPE_KEYS, error
    assert error["code"] == code
    assert error["type"] == ERROR_TYPES[code]
    assert isinstance(error["message"], str)
    assert error["message"]
    assert INTERNAL_DETAIL not in reply.body.decode()
    return dict(error)


def sse_data(body: bytes) -> list[bytes]:
    """The ``data`` of every event of an SSE body, in order."""
    out = []
    for event in body.replace(b"\r\n", b"\n").split(b"\n\n"):
        lines = [line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
        if lines:
            out.append(b"\n".join(lines))
    return out


def sse_json(body: bytes) -> list[dict[str, Any]]:
    """The JSON events of an SSE body (``[DONE]`` left out)."""
    return [orjson.loads(d) for d in sse_data(body) if d != b"[DONE]"]


def wav_bytes(seconds: float = 1.0, rate: int = 8000) -> bytes:
    """A mono 16-bit PCM WAV of silence, made with the standard library."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(struct.pack("<h", 0) * int(seconds * rate))
    return buffer.getvalue()


def transcription_form(audio: bytes, **fields: str) -> aiohttp.FormData:
    """A transcription upload: ``file`` plus the given fields (``model`` first)."""
    form = aiohttp.FormData()
    for name, value in fields.items():
        form.add_field(name, value)
    form.add_field("file", audio, filename="audio.wav", content_type="audio/wav")
    return form


async def eventually(check: Callable[[], Awaitable[bool]], attempts: int = 200) -> bool:
    """Poll ``check`` a bounded number of times, yielding to the loop between tries."""
    for _ in range(attempts):
        if await check():
            return True
        await asyncio.sleep(0.02)
    return False


async def finished(stack: Stack, account_id: str, requests: int = 1) -> bool:
    """Wait until the account's admitted requests are over: each writes its request-log row
    only after it released its hold (bounded poll)."""
    from bastion.storage.sql.settlements import recent_requests

    async def logged() -> bool:
        await stack.settled()
        rows = await recent_requests(stack.runtime.db.engine, account_id, limit=requests)
        return len(rows) >= requests

    return await eventually(logged)


async def holds_released(stack: Stack, account_id: str, requests: int = 1) -> bool:
    """Every admitted request of the account is over and no credit is held any more."""
    if not await finished(stack, account_id, requests):
        return False
    return await stack.runtime.admission_store.open_holds(account_id) == 0


async def charges(stack: Stack, account_id: str) -> list[dict[str, Any]]:
    """The account's charge entries, once every pending settlement is written."""
    await stack.settled()
    return await stack.runtime.db.ledger.entries(account_id, kinds=("charge",))


async def journal_for(stack: Stack, path: str) -> list[dict[str, Any]]:
    return [entry for entry in await stack.sim_journal() if entry["path"] == path]

"""The public listener's own connection handler (``bastion.http.listener``) on raw sockets:
what it serves itself, what it hands to aiohttp (with the bytes as sent, mid-connection
too), pipelining, keep-alive and the response head it writes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
import pytest

from tests.support.harness import Stack

IDLE_S = 0.3


@pytest.fixture
def config() -> dict[str, Any]:
    return {"listener": {"keepalive_timeout_s": IDLE_S}}


def _chat(key: str, *, extra: bytes = b"", stream: bool = False, tokens: int = 3) -> bytes:
    body = orjson.dumps(
        {
            "model": "gpt-oss-120b",
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": tokens,
            "stream": stream,
        }
    )
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {key}\r\nContent-Length: {len(body)}\r\n".encode()
        + extra
        + b"\r\n"
        + body
    )


HEALTH = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


class Responses:
    """Reads HTTP/1.1 responses (Content-Length or chunked) off a raw connection."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader

    async def next(self) -> tuple[int, dict[str, str], bytes]:
        async with asyncio.timeout(10):
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ")[1])
            headers: dict[str, str] = {}
            for line in lines[1:]:
                if line:
                    name, _, value = line.partition(":")
                    assert name.lower() not in headers, f"{name} twice"
                    headers[name.lower()] = value.strip()
            if headers.get("transfer-encoding") == "chunked":
                body = b""
                while True:
                    size = int((await self.reader.readuntil(b"\r\n"))[:-2], 16)
                    data = await self.reader.readexactly(size + 2)
                    if size == 0:
                        break
                    body += data[:-2]
            else:
                body = await self.reader.readexactly(int(headers.get("content-length", "0")))
            return status, headers, body

    async def closed(self) -> bool:
        try:
            async with asyncio.timeout(5):
                return await self.reader.read() == b""
        except (TimeoutError, ConnectionError):
            return False


async def _open(stack: Stack) -> tuple[Responses, asyncio.StreamWriter]:
    host, port = stack.server.bound[0]
    reader, writer = await asyncio.open_connection(host, port)
    return Responses(reader), writer


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


async def test_the_head_of_an_answer(stack: Stack) -> None:
    _, key = await stack.account_and_key()
    responses, writer = await _open(stack)
    writer.write(_chat(key))
    status, headers, body = await responses.next()
    assert status == 200
    assert orjson.loads(body)["object"] == "chat.completion"
    assert headers["content-type"] == "application/json"
    assert headers["x-request-id"].startswith("req_")
    assert headers["x-ratelimit-limit-requests"]
    assert headers["date"].endswith(" GMT")
    assert "server" not in headers  # no software version to fingerprint
    assert "connection" not in headers  # HTTP/1.1 keeps the connection by default
    await _close(writer)


async def test_pipelined_requests_are_answered_in_order(stack: Stack) -> None:
    _, key = await stack.account_and_key()
    responses, writer = await _open(stack)
    writer.write(_chat(key) + _chat(key, stream=True) + _chat(key))
    first, second, third = [await responses.next() for _ in range(3)]
    assert [first[0], second[0], third[0]] == [200, 200, 200]
    assert orjson.loads(first[2])["object"] == "chat.completion"
    assert second[1]["content-type"] == "text/event-stream"
    assert second[2].rstrip().endswith(b"data: [DONE]")
    assert orjson.loads(third[2])["object"] == "chat.completion"
    ids = {first[1]["x-request-id"], second[1]["x-request-id"], third[1]["x-request-id"]}
    assert len(ids) == 3
    await _close(writer)


async def test_a_connection_is_handed_to_aiohttp_mid_way_and_keeps_working(stack: Stack) -> None:
    _, key = await stack.account_and_key()
    responses, writer = await _open(stack)
    writer.write(_chat(key))
    assert (await responses.next())[0] == 200
    # the second request is not the API lane's: aiohttp gets it, with the rest pipelined
    writer.write(HEALTH + _chat(key))
    health, chat = await responses.next(), await responses.next()
    assert health[0] == 200
    assert orjson.loads(health[2]) == {"status": "ok"}
    assert chat[0] == 200
    assert orjson.loads(chat[2])["object"] == "chat.completion"
    writer.write(_chat(key, stream=True))
    status, _, body = await responses.next()
    assert status == 200
    assert body.rstrip().endswith(b"data: [DONE]")
    await _close(writer)


async def test_a_body_arriving_after_its_head(stack: Stack) -> None:
    _, key = await stack.account_and_key()
    request = _chat(key)
    head, _, body = request.partition(b"\r\n\r\n")
    responses, writer = await _open(stack)
    writer.write(head + b"\r\n\r\n" + body[:5])
    await asyncio.sleep(0.05)
    writer.write(body[5:])
    status, _, answer = await responses.next()
    assert status == 200, answer
    await _close(writer)


async def test_empty_lines_before_a_request_are_skipped(stack: Stack) -> None:
    _, key = await stack.account_and_key()
    responses, writer = await _open(stack)
    writer.write(b"\r\n" + _chat(key))
    assert (await responses.next())[0] == 200
    await _close(writer)


async def test_connection_close_is_honoured(stack: Stack) -> None:
    _, key = await stack.account_and_key()
    responses, writer = await _open(stack)
    writer.write(_chat(key, extra=b"Connection: close\r\n"))
    status, headers, _ = await responses.next()
    assert status == 200
    assert headers["connection"] == "close"
    assert await responses.closed()
    await _close(writer)


async def test_http_1_0_is_served_by_aiohttp(stack: Stack) -> None:
    _, key = await stack.account_and_key()
    responses, writer = await _open(stack)
    writer.write(_chat(key).replace(b"HTTP/1.1", b"HTTP/1.0", 1))
    status, _, body = await responses.next()
    assert status == 200
    assert orjson.loads(body)["object"] == "chat.completion"
    assert await responses.closed()
    await _close(writer)


async def test_an_idle_connection_is_closed_after_the_keep_alive_timeout(stack: Stack) -> None:
    _, key = await stack.account_and_key()
    responses, writer = await _open(stack)
    writer.write(
        b"GET /v1/models HTTP/1.1\r\nHost: x\r\n" + f"Authorization: Bearer {key}\r\n\r\n".encode()
    )
    status, _, body = await responses.next()
    assert status == 200
    assert orjson.loads(body)["object"] == "list"
    assert await responses.closed(), "an idle kept-alive connection was never closed"
    await _close(writer)


async def test_errors_from_the_api_lane_keep_the_connection(stack: Stack) -> None:
    responses, writer = await _open(stack)
    writer.write(_chat("qbt_not_a_key") + _chat("qbt_not_a_key"))
    for _ in range(2):
        status, headers, body = await responses.next()
        assert status == 401
        assert headers["content-type"] == "application/json"
        assert orjson.loads(body)["error"]["code"] == "invalid_api_key"
        assert headers["x-request-id"].startswith("req_")
    await _close(writer)


async def test_a_client_that_leaves_mid_stream_cancels_its_request(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    await stack.sim_control(tokens_per_second=5, first_token_ms=0)
    _, key = await stack.account_and_key()
    responses, writer = await _open(stack)
    caplog.set_level(logging.INFO, logger="bastion.request")
    writer.write(_chat(key, stream=True, tokens=100))  # 20 s of tokens
    await responses.reader.readuntil(b"\r\n\r\n")  # the stream has begun
    await _close(writer)
    await stack.settled()  # waits up to 10 s for the request to end
    assert stack.runtime.metrics.active == 0
    [line] = [r for r in caplog.records if r.getMessage() == "request"]
    assert getattr(line, "status", None) == 499

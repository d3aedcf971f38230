"""The upstream connection pool against a scripted server that speaks raw HTTP/1.1: reuse,
framing, decoding, every deadline, and a reply abandoned or cancelled closing its connection
(so the upstream stops generating)."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import cast

import aiohttp
import pytest

from bastion.upstream.wire import BodyWriter, ConnectError, Pool, WireError, header_problem

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Server:
    url: str
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the client closes a connection (the server reads its end)."""


async def read_request(reader: asyncio.StreamReader, server: Server) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    body = await reader.readexactly(length)
    server.requests.append(head + body)
    return head + body


async def wait_closed(reader: asyncio.StreamReader, server: Server) -> None:
    if not await reader.read(1):
        server.closed.set()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Script], Awaitable[Server]]]:
    servers: list[asyncio.Server] = []

    async def start(script: Script) -> Server:
        state = Server(url="")

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            state.connections += 1
            try:
                await script(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        state.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/prefix"
        return state

    yield start
    for server in servers:
        server.close()


def pool(url: str, **kw: float) -> Pool:
    return Pool(
        url,
        {"User-Agent": "bastion", "Authorization": "Bearer sk-up"},
        max_connections=int(kw.pop("max_connections", 8)),
        connect_s=kw.pop("connect_s", 2.0),
        between_chunks_s=kw.pop("between_chunks_s", 2.0),
        keepalive_s=kw.pop("keepalive_s", 30.0),
    )


OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'


async def test_the_request_head_and_a_reused_connection(
    serve: Callable[[Script], Awaitable[Server]],
) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader, state)
            writer.write(OK)

    state = await serve(script)
    client = pool(state.url)
    try:
        for _ in range(3):
            reply = await client.post(
                "/v1/chat", b'{"a":1}', "application/json", first_byte_s=2, total_s=5
            )
            assert (reply.status, reply.content_type) == (200, "application/json")
            assert await reply.read(1024) == b'{"ok":true}'
            reply.release()
    finally:
        await client.close()
    assert state.connections == 1
    port = state.url.split(":")[2].split("/")[0]
    assert state.requests[0] == (
        b"POST /prefix/v1/chat HTTP/1.1\r\n"
        b"Host: 127.0.0.1:" + port.encode() + b"\r\n"
        b"User-Agent: bastion\r\nAuthorization: Bearer sk-up\r\n"
        b"Content-Type: application/json\r\nContent-Length: 7\r\n\r\n"
        b'{"a":1}'
    )


async def test_chunks_arrive_as_they_are_sent(
    serve: Callable[[Script], Awaitable[Server]],
) -> None:
    seen = asyncio.Event()

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, state)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n6\r\ndata:1\r\n"
        )
        await seen.wait()  # the second chunk only once the first was read
        writer.write(b"6\r\ndata:2\r\n0\r\n\r\n")
        await wait_closed(reader, state)

    state = await serve(script)
    client = pool(state.url)
    try:
        reply = await client.post("/s", b"{}", "application/json", first_byte_s=2, total_s=5)
        assert reply.content_type == "text/event-stream"
        got = []
        async for chunk in reply.chunks():
            got.append(chunk)
            seen.set()
        assert got == [b"data:1", b"data:2"]
        reply.release()
        assert client.open_connections == 1  # kept for the next request
    finally:
        await client.close()


async def test_a_body_that_ends_with_the_connection_and_a_gzip_body(
    serve: Callable[[Script], Awaitable[Server]],
) -> None:
    packed = gzip.compress(b'{"text":"hello"}')

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            request = await read_request(reader, state)
            if b"/large" in request:
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 3000000\r\n\r\n" + b"x" * 3_000_000
                )
            elif b"/gzip" in request:
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n"
                    b"Content-Length: %d\r\n\r\n%b" % (len(packed), packed)
                )
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
                await writer.drain()
                return

    state = await serve(script)
    client = pool(state.url)
    try:
        reply = await client.post("/close", b"", None, first_byte_s=2, total_s=5)
        assert await reply.read(1024) == b"until the end"
        reply.release()
        reply = await client.post("/gzip", b"", None, first_byte_s=2, total_s=5)
        assert await reply.read(1024) == b'{"text":"hello"}'
        reply.release()
        reply = await client.post("/large", b"", None, first_byte_s=2, total_s=5)
        assert await reply.read(1 << 22) == b"x" * 3_000_000  # more than a stream holds back
        reply.release()
    finally:
        await client.close()
    assert state.connections == 2  # a connection the server closed is not reused


@pytest.mark.parametrize("stage", ["first byte", "between chunks", "total"])
async def test_each_deadline_fails_the_reply_and_closes_the_connection(
    serve: Callable[[Script], Awaitable[Server]], stage: str
) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, state)
        if stage != "first byte":
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n")
        trickle = None
        if stage == "total":

            async def drip() -> None:  # a steady trickle: no gap is too long, the whole is
                for _ in range(40):
                    await asyncio.sleep(0.05)
                    writer.write(b"1\r\nb\r\n")

            trickle = asyncio.ensure_future(drip())
        await wait_closed(reader, state)
        if trickle is not None:
            trickle.cancel()

    state = await serve(script)
    client = pool(state.url, between_chunks_s=0.3 if stage == "between chunks" else 5)
    try:
        total_s = 0.6 if stage == "total" else 60.0

        async def call() -> bytes:
            # between chunks: the gap limit applies from the head on, though the first-byte
            # limit before it was longer
            first_byte_s = 30.0 if stage == "between chunks" else 0.3
            reply = await client.post("/x", b"{}", None, first_byte_s=first_byte_s, total_s=total_s)
            return await reply.read(1 << 20)

        with pytest.raises(WireError) as failure:
            await asyncio.wait_for(call(), 10)  # far below the 30 s first-byte limit
        assert failure.value.timeout
        await asyncio.wait_for(state.closed.wait(), 2)
    finally:
        await client.close()


async def test_an_abandoned_reply_closes_its_connection(
    serve: Callable[[Script], Awaitable[Server]],
) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, state)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n")
        await wait_closed(reader, state)

    state = await serve(script)
    client = pool(state.url)
    try:
        reply = await client.post("/x", b"{}", None, first_byte_s=2, total_s=5)
        reply.close()  # the client left mid-stream
        await asyncio.wait_for(state.closed.wait(), 2)
        assert client.open_connections == 0
    finally:
        await client.close()


async def test_a_request_cancelled_before_the_reply_closes_its_connection(
    serve: Callable[[Script], Awaitable[Server]],
) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, state)
        await wait_closed(reader, state)  # never answers

    state = await serve(script)
    client = pool(state.url)
    try:
        task = asyncio.ensure_future(client.post("/x", b"{}", None, first_byte_s=5, total_s=5))
        while not state.requests:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(state.closed.wait(), 2)
        assert client.open_connections == 0
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", "closed"),  # cut short
        (b"", "closed"),  # closed without answering
        (b"HTTP/1.1 2x0 OK\r\n\r\n", "malformed"),
        (b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * 200 + b"\r\n", "malformed"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n" + b"a" * 2000, "too large"),
        (b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc", "decode"),
        (b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 3\r\n\r\nabc", "encoding"),
    ],
)
async def test_a_broken_answer_is_an_error_not_a_timeout(
    serve: Callable[[Script], Awaitable[Server]], answer: bytes, reason: str
) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, state)
        writer.write(answer)
        await writer.drain()

    state = await serve(script)
    client = pool(state.url)
    try:

        async def call() -> bytes:
            reply = await client.post("/x", b"{}", None, first_byte_s=2, total_s=5)
            return await reply.read(1024)

        with pytest.raises(WireError) as failure:
            await call()
        assert not failure.value.timeout
        assert reason in str(failure.value)
    finally:
        await client.close()


async def test_a_second_answer_to_one_request_drops_the_connection(
    serve: Callable[[Script], Awaitable[Server]],
) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, state)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na" + OK)
        await wait_closed(reader, state)

    state = await serve(script)
    client = pool(state.url)
    try:
        reply = await client.post("/x", b"{}", None, first_byte_s=2, total_s=5)
        assert await reply.read(1024) == b"a"  # the first answer stands
        reply.release()
        await asyncio.wait_for(state.closed.wait(), 2)  # the connection is not reused
        assert client.open_connections == 0
    finally:
        await client.close()


async def test_callers_beyond_the_connection_limit_wait_their_turn(
    serve: Callable[[Script], Awaitable[Server]],
) -> None:
    go = asyncio.Event()

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader, state)
            await go.wait()
            writer.write(OK)

    state = await serve(script)
    client = pool(state.url, max_connections=1)

    async def call() -> bytes:
        reply = await client.post("/x", b"{}", None, first_byte_s=2, total_s=5)
        data = await reply.read(1024)
        reply.release()
        return data

    try:
        calls = [asyncio.ensure_future(call()) for _ in range(3)]
        await asyncio.sleep(0.1)
        assert len(state.requests) == 1  # the others wait for the one connection
        go.set()
        assert await asyncio.gather(*calls) == [b'{"ok":true}'] * 3
        assert state.connections == 1
    finally:
        await client.close()


async def test_idle_connections_close_after_the_keepalive_time(
    serve: Callable[[Script], Awaitable[Server]],
) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, state)
        writer.write(OK)
        await wait_closed(reader, state)

    state = await serve(script)
    client = pool(state.url, keepalive_s=0.2)
    try:
        reply = await client.post("/x", b"{}", None, first_byte_s=2, total_s=5)
        await reply.read(1024)
        reply.release()
        assert client.open_connections == 1
        await asyncio.wait_for(state.closed.wait(), 2)
        assert client.open_connections == 0
    finally:
        await client.close()


async def test_a_refused_connection_and_a_header_that_would_split_the_request() -> None:
    client = pool("http://127.0.0.1:9")  # discard port: nothing listens
    with pytest.raises(ConnectError):
        await client.post("/x", b"{}", None, first_byte_s=1, total_s=2)
    await client.close()
    with pytest.raises(ValueError, match="line break"):
        Pool(
            "http://127.0.0.1:1",
            {"X-A": "b\r\nX-B: c"},
            max_connections=1,
            connect_s=1,
            between_chunks_s=1,
        )


async def test_a_multipart_body_is_streamed_with_its_length(
    serve: Callable[[Script], Awaitable[Server]],
) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, state)
        writer.write(OK)
        await wait_closed(reader, state)

    state = await serve(script)
    form = aiohttp.FormData()
    form.add_field("model", "whisper")
    form.add_field("file", b"\x00" * 300_000, filename="a.wav", content_type="audio/wav")
    multipart = form()
    body = cast(BodyWriter, multipart)  # writes its parts with write(bytes) only
    client = pool(state.url)
    try:
        reply = await client.post("/x", body, multipart.content_type, first_byte_s=2, total_s=5)
        assert await reply.read(1024) == b'{"ok":true}'
    finally:
        await client.close()
    sent = state.requests[0]
    head, _, payload = sent.partition(b"\r\n\r\n")
    assert b"Content-Type: multipart/form-data; boundary=" in head
    assert f"Content-Length: {len(payload)}".encode() in head
    assert b"\x00" * 300_000 in payload


async def test_a_slow_reader_pauses_the_upstream_without_failing_the_gap_deadline(
    serve: Callable[[Script], Awaitable[Server]],
) -> None:
    piece = b"x" * 16_384

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, state)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(128):  # 2 MiB, as fast as the socket takes it
            writer.write(b"%x\r\n%b\r\n" % (len(piece), piece))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        await wait_closed(reader, state)

    state = await serve(script)
    client = pool(state.url, between_chunks_s=0.3)
    try:
        reply = await client.post("/x", b"{}", None, first_byte_s=2, total_s=10)
        received, paused, slept = 0, False, 0
        async for chunk in reply.chunks():
            received += len(chunk)
            connection = reply._connection
            paused = paused or (connection is not None and connection.paused)
            if slept < 20:  # slower than the upstream: 0.6 s in all, longer than the gap
                slept += 1
                await asyncio.sleep(0.03)
        assert received == 128 * len(piece)
        assert paused  # reading stopped while the reader lagged, and resumed
        reply.release()
        assert client.open_connections == 1
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("X-Tenant", "blue", None),
        ("X Tenant", "blue", "not a valid header name"),
        ("Content-Length", "3", "set by Bastion for each request"),
        ("transfer-encoding", "chunked", "set by Bastion for each request"),
        ("X-A", "b\nX-B: c", "a line break is not allowed"),
        ("X-A", "snowman ☃", "only Latin-1 characters can be sent"),
    ],
)
def test_which_configured_headers_can_be_sent(name: str, value: str, problem: str | None) -> None:
    assert header_problem(name, value) == problem


async def test_the_operators_host_header_replaces_the_urls(
    serve: Callable[[Script], Awaitable[Server]],
) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader, state)
        writer.write(OK)
        await wait_closed(reader, state)

    state = await serve(script)
    client = Pool(
        state.url, {"host": "vllm.internal"}, max_connections=1, connect_s=1, between_chunks_s=1
    )
    try:
        reply = await client.post("/x", b"", None, first_byte_s=2, total_s=5)
        await reply.read(1024)
    finally:
        await client.close()
    head = state.requests[0].split(b"\r\n\r\n")[0].lower()
    assert head.count(b"host:") == 1
    assert b"\r\nhost: vllm.internal" in head

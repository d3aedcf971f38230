"""Pooled HTTP/1.1 connections to one upstream server, parsed by llhttp (``httptools``).

aiohttp's client was the largest single cost of a proxied request (docs/performance.md): its
session builds a request object, merges headers, arms timers and wraps the reply for every
call.  Bastion's upstream calls are all alike (a POST of bytes it already holds, to a fixed
server, with the same headers), so this client keeps only what they need:

- a request head built once per path and content type, sent with its body in one write;
- the reply parsed by ``httptools`` (llhttp, the parser of Node.js and aiohttp), its body
  kept as the chunks that arrived;
- one timer per reply, re-armed only when it fires: before the head it bounds the wait for
  the first byte, after it each gap between chunks, and always the request's total;
- kept-alive connections reused last-in first-out, closed after ``keepalive_s`` idle, at
  most ``max_connections`` open (callers beyond that wait their turn);
- a reply abandoned before its end closes its connection: the upstream sees the client
  leave and stops generating.

Redirects are never followed (the reply is returned as it is).  ``gzip`` and ``deflate``
bodies are decoded (Bastion asks for ``identity``; a server may answer compressed anyway).
"""

from __future__ import annotations

import asyncio
import re
import ssl
import zlib
from collections import deque
from collections.abc import AsyncIterator, Mapping
from typing import Protocol, cast

import httptools
from yarl import URL

KEEPALIVE_S = 30.0
TOO_LARGE = "the upstream answer is too large"
MAX_HEAD_BYTES = 64 * 1024
MAX_HEADERS = 100
KEPT = frozenset({b"content-type", b"content-encoding"})
"""The fields of an answer's head that Bastion reads (none is relayed to the client)."""
HIGH_WATER = 256 * 1024
"""Body bytes held unread before the connection stops reading (the client is slower than
the upstream); reading resumes below a quarter of it."""


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_PER_REQUEST = frozenset({"content-length", "transfer-encoding", "connection", "content-type"})


def header_problem(name: str, value: str) -> str | None:
    """Why a configured header cannot be sent (None if it can): it must be a well-formed
    field, on one line, in Latin-1, and not one Bastion sets for each request."""
    if not _TOKEN.fullmatch(name):
        return "not a valid header name"
    if name.lower() in _PER_REQUEST:
        return "set by Bastion for each request"
    if any(c in value for c in "\r\n\0"):
        return "a line break is not allowed"
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return "only Latin-1 characters can be sent"
    return None


class WireError(Exception):
    """One exchange failed; ``timeout`` tells a deadline from a broken connection."""

    def __init__(self, reason: str, *, timeout: bool = False) -> None:
        super().__init__(reason)
        self.timeout = timeout


class ConnectError(WireError):
    """No connection could be opened (refused, unreachable, timed out, TLS failed)."""


class BodyWriter(Protocol):
    """A body that writes itself (a multipart upload streamed from its file): aiohttp's
    ``MultipartWriter`` of a form, whose parts are written with ``write(bytes)`` alone."""

    @property
    def size(self) -> int | None: ...

    async def write(self, writer: ChunkWriter) -> None: ...


class ChunkWriter(Protocol):
    async def write(self, chunk: bytes) -> None: ...


class Reply:
    """One upstream answer: its head, then its body as it arrives."""

    __slots__ = (
        "_chunks",
        "_complete",
        "_connection",
        "_decoder",
        "_error",
        "_gap_s",
        "_held",
        "_hold_back",
        "_last",
        "_timer",
        "_until",
        "_waiter",
        "content_type",
        "headers",
        "status",
    )

    def __init__(self, connection: _Connection, first_byte_s: float, until: float) -> None:
        self._connection: _Connection | None = connection
        self.status = 0
        self.headers: dict[str, str] = {}
        self.content_type = "application/octet-stream"
        self._chunks: deque[bytes] = deque()
        self._held = 0
        self._hold_back = False
        """Reading pauses past HIGH_WATER unread bytes (once the body is read as a stream)."""
        self._complete = False
        self._error: WireError | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._decoder: zlib._Decompress | None = None
        loop = connection.loop
        self._gap_s = first_byte_s
        self._until = until
        self._last = loop.time()
        self._timer: asyncio.TimerHandle | None = loop.call_at(
            min(self._last + first_byte_s, until), self._on_timer
        )

    # -- reading, for the caller -----------------------------------------------------------

    async def head(self) -> None:
        """Wait for the status line and headers."""
        while not self.status:
            await self._wait()

    async def read(self, limit: int) -> bytes:
        """The whole body; :class:`WireError` if it is longer than ``limit`` bytes."""
        while not self._complete:
            if self._held > limit:
                break
            await self._wait()
        if self._held > limit:
            raise WireError(TOO_LARGE)
        data = b"".join(self._chunks)
        self._chunks.clear()
        self._held = 0
        return data

    async def chunks(self) -> AsyncIterator[bytes]:
        """Body chunks as they arrive (decoded), until the end."""
        self._hold_back = True
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self._held -= len(chunk)
                connection = self._connection
                if connection is not None and connection.paused and self._held < HIGH_WATER // 4:
                    connection.resume()
                    self._last = connection.loop.time()
                    self._stop_timer()  # it was set for the total deadline only
                    self._timer = connection.loop.call_at(
                        min(self._last + self._gap_s, self._until), self._on_timer
                    )
                yield chunk
            elif self._complete:
                return
            else:
                await self._wait()

    def release(self) -> None:
        """The body was read to its end: the connection goes back to the pool."""
        connection = self._connection
        if connection is not None and self._complete:
            self._connection = None
            connection.finished(self)

    def close(self) -> None:
        """Stop: a reply not read to its end closes its connection."""
        self._stop_timer()
        connection = self._connection
        if connection is None:
            return
        self._connection = None
        if self._complete:
            connection.finished(self)
        else:
            connection.abort()

    async def _wait(self) -> None:
        if self._error is not None:
            raise self._error
        connection = self._connection
        if connection is None:
            raise WireError("the reply was closed")
        waiter = self._waiter = connection.loop.create_future()
        try:
            await waiter
        finally:
            self._waiter = None
        if self._error is not None:
            raise self._error

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- events, from the connection -------------------------------------------------------

    def on_head(self, status: int) -> None:
        self.status = status
        self.content_type = self.headers.get("content-type", "application/octet-stream")
        self.content_type = self.content_type.partition(";")[0].strip().lower()
        encoding = self.headers.get("content-encoding", "").strip().lower()
        if encoding in ("gzip", "x-gzip"):
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._decoder = zlib.decompressobj(zlib.MAX_WBITS)
        elif encoding not in ("", "identity"):
            # the head stands (its status is read), the body cannot be: reading it fails
            self.fail(WireError("the upstream answered in a content encoding it was not asked for"))
        connection = self._connection
        if connection is not None:
            gap_s = connection.pool.between_chunks_s
            if gap_s < self._gap_s and self._timer is not None:
                # the timer is set for the longer first-byte limit: bring it forward
                self._timer.cancel()
                self._timer = connection.loop.call_at(
                    min(self._last + gap_s, self._until), self._on_timer
                )
            self._gap_s = gap_s
        self._wake()

    def on_body(self, data: bytes) -> None:
        if self._decoder is not None:
            try:
                data = self._decoder.decompress(data)
            except zlib.error:
                self.fail(WireError("the upstream sent a body it could not decode"))
                return
            if not data:
                return
        self._chunks.append(data)
        self._held += len(data)
        connection = self._connection
        if self._hold_back and self._held > HIGH_WATER and connection is not None:
            connection.pause()
        self._wake()

    def on_complete(self) -> None:
        if self._error is not None:
            return
        if self._decoder is not None:
            tail = self._decoder.flush()
            if tail:
                self._chunks.append(tail)
                self._held += len(tail)
        self._complete = True
        self._stop_timer()
        self._wake()

    def fail(self, error: WireError) -> None:
        if self._complete or self._error is not None:
            return
        self._error = error
        self._stop_timer()
        connection = self._connection
        self._connection = None
        if connection is not None:
            connection.abort()
        self._wake()

    def _on_timer(self) -> None:
        self._timer = None
        connection = self._connection
        if connection is None or self._complete:
            return
        now = connection.loop.time()
        due = self._until if connection.paused else min(self._last + self._gap_s, self._until)
        if now >= due - 0.0005:
            self.fail(WireError("timed out", timeout=True))
        else:
            self._timer = connection.loop.call_at(due, self._on_timer)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection: one exchange at a time."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self.reply: Reply | None = None
        self.paused = False
        self.idle_since = 0.0
        self.reusable = False
        self._parser = httptools.HttpResponseParser(self)
        self._head_bytes = 0
        self._header_count = 0
        self._length_known = False
        self._drain: asyncio.Future[None] | None = None
        self._writable = True

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not registered as asyncio.Transport subclasses
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        reply = self.reply
        if reply is None:
            self.abort()  # bytes nobody asked for: the connection's framing is lost
            return
        reply._last = self.loop.time()  # for the gap deadline
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade, ValueError):
            reply.fail(WireError("the upstream sent a malformed answer"))
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.pool.lost(self)
        reply = self.reply
        if reply is None:
            return
        if reply.status and not self._length_known:
            reply.on_complete()  # a body delimited by the connection's end
            self.reusable = False
        else:
            reply.fail(WireError("the upstream closed the connection"))
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_exception(WireError("the upstream closed the connection"))

    def pause_writing(self) -> None:
        self._writable = False

    def resume_writing(self) -> None:
        self._writable = True
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)

    # -- llhttp callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        reply = self.reply
        if reply is None or reply.status:
            # a second answer to one request: the connection's framing cannot be trusted
            raise ValueError("unexpected answer")

    def on_header(self, name: bytes, value: bytes) -> None:
        reply = self.reply
        if reply is None:
            return
        self._head_bytes += len(name) + len(value) + 4
        self._header_count += 1
        if self._head_bytes > MAX_HEAD_BYTES or self._header_count > MAX_HEADERS:
            raise ValueError("head too large")  # llhttp stops; data_received fails the reply
        key = name.lower()
        if key == b"content-length" or (
            key == b"transfer-encoding" and b"chunked" in value.lower()
        ):
            self._length_known = True
        elif key in KEPT:
            field = key.decode("latin-1")
            text = value.decode("latin-1")
            known = reply.headers.get(field)
            reply.headers[field] = text if known is None else f"{known}, {text}"

    def on_headers_complete(self) -> None:
        reply = self.reply
        if reply is not None:
            status = self._parser.get_status_code()
            if status < 200:  # an interim answer (100 Continue): the real one follows
                reply.headers.clear()
                return
            reply.on_head(status)

    def on_body(self, body: bytes) -> None:
        reply = self.reply
        if reply is not None:
            reply.on_body(body)

    def on_message_complete(self) -> None:
        reply = self.reply
        if reply is None or not reply.status:
            return
        self.reusable = self._parser.should_keep_alive()
        reply.on_complete()

    # -- the exchange ----------------------------------------------------------------------

    def _begin(self, first_byte_s: float, until: float) -> Reply:
        """A new exchange on this connection: its reply, and the head's counters reset."""
        self._length_known = False
        self._head_bytes = 0
        self._header_count = 0
        self.reusable = False
        reply = self.reply = Reply(self, first_byte_s, until)
        return reply

    def start(self, head: bytes, body: bytes, first_byte_s: float, until: float) -> Reply:
        assert self.transport is not None
        reply = self._begin(first_byte_s, until)
        self.transport.write(head + body if len(body) < 65536 else head)
        if len(body) >= 65536:
            self.transport.write(body)
        return reply

    async def stream(
        self, head: bytes, body: BodyWriter, first_byte_s: float, until: float
    ) -> Reply:
        assert self.transport is not None
        reply = self._begin(first_byte_s, until)
        self.transport.write(head)
        await body.write(_BodyStream(self, chunked=body.size is None))
        if body.size is None:
            self._write(b"0\r\n\r\n")
        return reply

    def _write(self, data: bytes) -> None:
        if self.transport is None:
            raise WireError("the upstream closed the connection")
        self.transport.write(data)

    async def drain(self) -> None:
        if self._writable:
            return
        self._drain = self.loop.create_future()
        try:
            await self._drain
        finally:
            self._drain = None

    def finished(self, reply: Reply) -> None:
        if self.reply is reply:
            self.reply = None
        if self.reusable and self.transport is not None and not self.transport.is_closing():
            self.pool.put_back(self)
        else:
            self.abort()

    def pause(self) -> None:
        if not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()

    def abort(self) -> None:
        self.reusable = False
        self.reply = None  # whatever still arrives is for nobody
        transport = self.transport
        if transport is not None:
            transport.abort()
        self.pool.lost(self)


class _BodyStream:
    """Writes a streamed body (in HTTP chunks when its length is unknown), waiting while the
    socket's buffer is full."""

    __slots__ = ("_chunked", "_connection")

    def __init__(self, connection: _Connection, *, chunked: bool) -> None:
        self._connection = connection
        self._chunked = chunked

    async def write(self, chunk: bytes) -> None:
        if not chunk:
            return
        if self._chunked:
            chunk = b"%x\r\n%b\r\n" % (len(chunk), chunk)
        self._connection._write(chunk)
        await self._connection.drain()


class Pool:
    """Connections to one server, reused; at most ``max_connections`` open at once."""

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        *,
        max_connections: int,
        connect_s: float,
        between_chunks_s: float,
        keepalive_s: float = KEEPALIVE_S,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        url = URL(base_url)
        if url.scheme not in ("http", "https") or not url.raw_host:
            raise ValueError("base_url: not an http(s) URL")
        self._loop: asyncio.AbstractEventLoop | None = None
        self.between_chunks_s = between_chunks_s
        self._host = url.raw_host
        self._port = url.port or (443 if url.scheme == "https" else 80)
        self._ssl: ssl.SSLContext | None = None
        if url.scheme == "https":
            self._ssl = tls or ssl.create_default_context()
        self._prefix = url.raw_path.rstrip("/")
        host = url.raw_host if ":" not in url.raw_host else f"[{url.raw_host}]"
        authority = host if url.explicit_port is None else f"{host}:{url.port}"
        lines = []
        for name, value in headers.items():
            problem = header_problem(name, value)
            if problem is not None:
                raise ValueError(f"headers.{name}: {problem}")
            lines.append(f"{name}: {value}")
        if not any(name.lower() == "host" for name in headers):  # the operator's wins
            lines.insert(0, f"Host: {authority}")
        self._fixed = "\r\n".join(lines) + "\r\n"
        self._heads: dict[tuple[str, str | None], bytes] = {}
        self._max = max_connections
        self._connect_s = connect_s
        self._keepalive_s = keepalive_s
        self._idle: list[_Connection] = []
        self._open: set[_Connection] = set()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop of the pool's first request (a pool is made before it runs)."""
        assert self._loop is not None
        return self._loop

    def head_for(self, path: str, content_type: str | None, length: int | None) -> bytes:
        """The request head: built once per path and content type, then only its length."""
        key = (path, content_type)
        start = self._heads.get(key)
        if start is None:
            text = f"POST {self._prefix}{path} HTTP/1.1\r\n{self._fixed}"
            if content_type:
                text += f"Content-Type: {content_type}\r\n"
            start = text.encode("latin-1")
            if len(self._heads) < 256:
                self._heads[key] = start
        if length is None:
            return start + b"Transfer-Encoding: chunked\r\n\r\n"
        return b"%bContent-Length: %d\r\n\r\n" % (start, length)

    async def post(
        self,
        path: str,
        body: bytes | BodyWriter,
        content_type: str | None,
        *,
        first_byte_s: float,
        total_s: float,
    ) -> Reply:
        """Send, and return the reply once its head is in."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        until = self._loop.time() + total_s
        connection = await self._acquire(until)
        try:
            if isinstance(body, bytes | bytearray | memoryview):
                data = bytes(body)
                reply = connection.start(
                    self.head_for(path, content_type, len(data)), data, first_byte_s, until
                )
            else:
                reply = await connection.stream(
                    self.head_for(path, content_type, body.size), body, first_byte_s, until
                )
            await reply.head()
        except BaseException:
            connection.abort()
            raise
        return reply

    async def _acquire(self, until: float) -> _Connection:
        while True:
            if self._closed:
                raise WireError("the client is closed")
            now = self.loop.time()
            while self._idle:
                connection = self._idle.pop()
                transport = connection.transport
                if transport is None or transport.is_closing():
                    self.lost(connection)
                    continue
                if now - connection.idle_since > self._keepalive_s:
                    connection.abort()
                    continue
                return connection
            if len(self._open) < self._max:
                return await self._connect(until)
            waiter = self.loop.create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout_at(until):
                    await waiter
            except TimeoutError:
                raise WireError("no free connection in time", timeout=True) from None
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # woken, then cancelled: the turn passes on
                raise
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    async def _connect(self, until: float) -> _Connection:
        connection = _Connection(self)
        self._open.add(connection)
        try:
            async with asyncio.timeout_at(min(until, self.loop.time() + self._connect_s)):
                await self.loop.create_connection(
                    lambda: connection,
                    self._host,
                    self._port,
                    ssl=self._ssl,
                    server_hostname=self._host if self._ssl is not None else None,
                )
        except TimeoutError:
            self.lost(connection)
            raise ConnectError("connecting timed out", timeout=True) from None
        except OSError as exc:
            self.lost(connection)
            raise ConnectError(f"could not connect: {exc.strerror or exc}") from None
        except BaseException:
            connection.abort()
            raise
        return connection

    def put_back(self, connection: _Connection) -> None:
        if self._closed:
            connection.abort()
            return
        connection.idle_since = self.loop.time()
        self._idle.append(connection)
        if self._sweeper is None:
            self._sweeper = self.loop.call_later(self._keepalive_s, self._sweep)
        self._wake_one()

    def lost(self, connection: _Connection) -> None:
        if connection in self._open:
            self._open.discard(connection)
            if connection in self._idle:
                self._idle.remove(connection)
            self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _sweep(self) -> None:
        """Close connections idle past the keep-alive time (the oldest are at the bottom)."""
        self._sweeper = None
        cutoff = self.loop.time() - self._keepalive_s
        while self._idle and self._idle[0].idle_since <= cutoff:
            self._idle[0].abort()
        if self._idle:
            wait = self._idle[0].idle_since + self._keepalive_s - self.loop.time()
            self._sweeper = self.loop.call_later(max(wait, 0.1), self._sweep)

    @property
    def open_connections(self) -> int:
        return len(self._open)

    async def close(self) -> None:
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for connection in list(self._open):
            connection.abort()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

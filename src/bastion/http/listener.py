"""The public listener's connections: the API's hot path served on llhttp directly, the rest
handed to aiohttp.

aiohttp's server (its request and response objects, router, middlewares and writer) took
about 30 % of the gateway's core per request at saturation (py-spy, docs/performance.md).
This handler parses with llhttp (``httptools``, the parser aiohttp's C extension wraps too)
and serves, on its own, what an API client sends: ``POST`` to the five JSON endpoints and
``GET /v1/models``, in HTTP/1.1, with a ``Content-Length`` body or none, without ``Expect``
or ``Upgrade``, over HTTPS as the listener's rule defines it (:mod:`bastion.http.transport`).

Anything else (another path or method, a chunked body, HTTP/1.0, a head llhttp refuses or
longer than this handler reads, plain HTTP that must be redirected) is handed to aiohttp's
handler (:class:`~bastion.http.protocol.GuardedRequestHandler`) with the request's bytes as
they arrived, and the connection stays with aiohttp from then on.  So every unusual request
gets exactly aiohttp's behaviour: the 400 envelope for malformed ones, 404, 405, the
redirect of plain HTTP, the dashboard.  A request is handed over before anything of it is
served, never during it.

Receipt deadlines are the same as aiohttp's handler's here: the head within
``header_timeout_s`` (from the connection's start, and from the first byte of each later
request), the body within ``body_timeout_s`` of its head, else 408 and the connection
closes (a handler waiting for that body is cancelled); an idle kept-alive connection is
closed after ``keepalive_timeout_s``.  A client that leaves cancels its request, as with
aiohttp's ``handler_cancellation``.  Pipelined requests are served one after the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import cast

import httptools
import orjson

from bastion.core.catalog import Endpoint
from bastion.core.delivery import Delivery
from bastion.errors import BastionError
from bastion.gateway.sink import ClientGoneError, Exchange
from bastion.http import api
from bastion.http.lifecycle import Edge, run
from bastion.http.protocol import (
    MAX_FIELD_SIZE,
    MAX_HEADERS,
    MAX_LINE_SIZE,
    REQUEST_TIMEOUT,
    refuse,
)
from bastion.http.raw import can_hand_over, chunk, hand_over, http_date, unbilled
from bastion.http.transport import https_from, proxied
from bastion.runtime import Runtime
from bastion.settings import ListenerSettings

HEAD_LIMIT = 32 * 1024
"""A head still without its end past this many bytes goes to aiohttp, which applies the
exact line, field and count limits (real clients send well under 2 KiB)."""
PIPELINE_LIMIT = 256 * 1024
"""Bytes of later requests held while one is served, past which reading pauses."""

_MODELS = "models"
ROUTES: dict[tuple[bytes, bytes], Endpoint | str] = {
    (b"GET", b"/v1/models"): _MODELS,
    **{(b"POST", endpoint.path.encode()): endpoint for endpoint in api.JSON_ENDPOINTS},
}
_STATUS_LINES = {
    int(status): f"HTTP/1.1 {int(status)} {status.phrase}\r\n" for status in HTTPStatus
}
_END = b"0\r\n\r\n"


class _HandOverError(Exception):
    """Raised in a parser callback: this request is aiohttp's."""


class ApiServer:
    """The connection factory of the public listener, and its drain."""

    def __init__(self, runtime: Runtime, aiohttp_handler: Callable[[], asyncio.Protocol]) -> None:
        self.runtime = runtime
        self.listener: ListenerSettings = runtime.settings.listener
        self.aiohttp_handler = aiohttp_handler
        self.connections: set[ApiConnection] = set()
        self.draining = False
        self._idle = asyncio.Event()
        """Set when the last connection is gone (waited for by the drain)."""
        self._proxied = proxied(self.listener)

    def __call__(self) -> ApiConnection:
        return ApiConnection(self)

    def forget(self, connection: ApiConnection) -> None:
        self.connections.discard(connection)
        if not self.connections:
            self._idle.set()

    def https(self, peer: str | None, headers: Mapping[bytes, bytes]) -> bool:
        """The request came over HTTPS (see :mod:`bastion.http.transport`); otherwise it is
        aiohttp's, which redirects it."""
        if not self._proxied:
            return True
        proto = headers.get(b"x-forwarded-proto", b"").decode("latin-1")
        return https_from(peer, proto, self.listener.trusted_proxies)

    async def shutdown(self, grace_s: float) -> None:
        """Close idle connections, let requests in flight finish for up to ``grace_s``, then
        cancel what is left and wait for it to unwind (its charge written)."""
        self.draining = True
        for connection in list(self.connections):
            connection.close_when_idle()
        if self.connections:
            self._idle.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace_s):
                    await self._idle.wait()
        tasks = [c.cancel() for c in list(self.connections)]
        waiting = [task for task in tasks if task is not None]
        if waiting:
            await asyncio.wait(waiting, timeout=5.0)


class ApiConnection(asyncio.Protocol):
    __slots__ = (
        "_body_timer",
        "_buffer",
        "_call",
        "_complete",
        "_count",
        "_drain",
        "_fed",
        "_header_timer",
        "_headers",
        "_idle_timer",
        "_loop",
        "_parser",
        "_paused_reading",
        "_paused_writing",
        "_peer",
        "_scan",
        "_url",
        "server",
        "transport",
    )

    def __init__(self, server: ApiServer) -> None:
        self.server = server
        self._loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._buffer = b""
        """Received, not yet consumed: from the first byte of the request being read."""
        self._fed = 0
        """How much of ``_buffer`` the parser has seen."""
        self._scan = 0
        """Where the search for the end of the head resumes."""
        self._url = b""
        self._headers: dict[bytes, bytes] = {}
        self._count = 0
        self._complete = False
        self._call: ApiCall | None = None
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._paused_reading = False
        self._paused_writing = False
        self._drain: asyncio.Future[None] | None = None
        self._peer: str | None = None

    # -- asyncio's protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport instances (no isinstance check)
        self.transport = cast("asyncio.Transport", transport)
        peer = transport.get_extra_info("peername")
        self._peer = str(peer[0]) if isinstance(peer, tuple) and peer else None
        self.server.connections.add(self)
        self._arm_headers()  # a connection that never sends is closed at the deadline too

    def data_received(self, data: bytes) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        call = self._call
        if call is not None and call.waiting:
            # a body in many pieces is joined once, when whole (not copied at each piece)
            call.parts.append(data)
            call.received += len(data)
            if call.received >= call.length:
                self._body_arrived(call)
            return
        self._buffer = self._buffer + data if self._buffer else data
        if call is None:
            self._next()
        elif len(self._buffer) > PIPELINE_LIMIT and not self._paused_reading:
            transport = self.transport
            if transport is not None:
                self._paused_reading = True
                transport.pause_reading()

    def eof_received(self) -> bool | None:
        return None  # close: a half-closed client gets no more answers

    def connection_lost(self, exc: BaseException | None) -> None:
        self.server.forget(self)
        self.transport = None
        for timer in (self._header_timer, self._body_timer, self._idle_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._body_timer = self._idle_timer = None
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_exception(ConnectionResetError("the client left"))
        call = self._call
        if call is not None and call.task is not None:
            call.task.cancel()  # the client left: so does its request (and upstream call)

    def pause_writing(self) -> None:
        self._paused_writing = True

    def resume_writing(self) -> None:
        self._paused_writing = False
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)

    @property
    def paused(self) -> bool:
        """The transport's buffer is over its high-water mark: writers wait."""
        return self._paused_writing

    async def drain(self) -> None:
        if self._paused_writing:
            self._drain = self._loop.create_future()
            await self._drain

    # -- llhttp's callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = {}
        self._count = 0
        self._complete = False

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > MAX_LINE_SIZE:
            raise _HandOverError()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count += 1
        if self._count > MAX_HEADERS or len(value) > MAX_FIELD_SIZE or len(name) > MAX_FIELD_SIZE:
            raise _HandOverError()
        self._headers.setdefault(name.lower(), value)

    def on_headers_complete(self) -> None:
        self._complete = True

    # -- reading requests ------------------------------------------------------------------

    def _next(self) -> None:
        """Read the next request's head from ``_buffer``: serve it, hand it over, or wait."""
        buffer = self._buffer
        while buffer:
            end = buffer.find(b"\r\n\r\n", self._scan)
            try:
                if end < 0 or end > HEAD_LIMIT:
                    self._parser.feed_data(memoryview(buffer)[self._fed :])
                    self._fed = len(buffer)
                    self._scan = max(0, len(buffer) - 3)
                    if self._complete or len(buffer) > HEAD_LIMIT:
                        # a head ended otherwise than by CRLF CRLF, or endless
                        raise _HandOverError()
                    if self._header_timer is None:
                        self._arm_headers()
                    return
                end += 4
                self._parser.feed_data(memoryview(buffer)[self._fed : end])
            except (_HandOverError, httptools.HttpParserError):
                self._hand_over()
                return
            self._fed = self._scan = end
            if self._complete:
                self._start(end)
                return
            # only empty lines before a request so far: look further

    def _start(self, end: int) -> None:
        parser = self._parser
        headers = self._headers
        head = self._buffer[:end]
        path = self._url.partition(b"?")[0]
        route = ROUTES.get((parser.get_method(), path))
        length = int(headers.get(b"content-length", b"0"))
        if (
            route is None
            or parser.get_http_version() != "1.1"
            or b"transfer-encoding" in headers
            or b"expect" in headers
            or b"upgrade" in headers
            or head.count(b"\n") != head.count(b"\r\n")  # a bare LF: llhttp's call, not ours
            or length > self.server.listener.max_json_body_bytes  # aiohttp refuses, lingers
            or not self.server.https(self._peer, headers)
        ):
            self._hand_over()
            return
        self._cancel_headers()
        self._buffer = self._buffer[end:]
        self._fed = self._scan = 0
        authorization = headers.get(b"authorization")
        call = ApiCall(
            self,
            route,
            path.decode("latin-1"),
            None if authorization is None else authorization.decode("latin-1"),
            length,
            parser.should_keep_alive() and not self.server.draining,
        )
        self._call = call
        if length:
            rest, self._buffer = self._buffer, b""
            call.waiting = True
            call.parts.append(rest)
            call.received = len(rest)
            if call.received >= length:
                self._body_arrived(call)
            else:
                self._body_timer = self._loop.call_later(
                    self.server.listener.body_timeout_s, self._body_missed
                )
        call.task = self._loop.create_task(self._serve(call))

    def _body_arrived(self, call: ApiCall) -> None:
        data = b"".join(call.parts) if len(call.parts) > 1 else call.parts[0]
        call.parts.clear()
        body = data[: call.length] if len(data) > call.length else data
        self._buffer = data[call.length :]  # what follows: a pipelined request
        try:
            self._parser.feed_data(body)  # the parser's state follows, for the next request
        except httptools.HttpParserError:
            call.keep_alive = False
        call.body = body
        call.waiting = False
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        if call.arrived is not None and not call.arrived.done():
            call.arrived.set_result(None)

    async def _serve(self, call: ApiCall) -> None:
        runtime = self.server.runtime
        if call.route == _MODELS:
            handler = call.models
            method = "GET"
        else:
            handler = call.json
            method = "POST"
        try:
            await run(runtime, method, call.path, call, handler)
        finally:
            self._finished(call)

    def _finished(self, call: ApiCall) -> None:
        self._call = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if call.streaming and call.answered and not call.ended:
            transport.write(_END)  # a stream the gateway left open still ends properly
        elif not call.answered:
            transport.close()  # nothing was said: the client gets a closed connection
            return
        if not call.keep_alive or self.server.draining:
            transport.close()
            return
        if self._paused_reading:
            self._paused_reading = False
            transport.resume_reading()
        if self._buffer:
            self._next()
        else:
            self._idle_timer = self._loop.call_later(
                self.server.listener.keepalive_timeout_s, self._idle
            )

    # -- the hand-over to aiohttp ------------------------------------------------------------

    def _hand_over(self) -> None:
        """Give the connection, with the unconsumed bytes of this request and any after it,
        to aiohttp's handler."""
        transport = self.transport
        if transport is None:
            return
        self.server.forget(self)
        self._cancel_headers()
        if self._paused_reading:
            self._paused_reading = False
            transport.resume_reading()
        buffer, self._buffer = self._buffer, b""
        handler = self.server.aiohttp_handler()
        self.transport = None
        transport.set_protocol(handler)
        handler.connection_made(transport)
        handler.data_received(buffer)

    # -- deadlines ---------------------------------------------------------------------------

    def _arm_headers(self) -> None:
        self._header_timer = self._loop.call_later(
            self.server.listener.header_timeout_s, self._headers_missed
        )

    def _cancel_headers(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_missed(self) -> None:
        self._header_timer = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self._call is not None:
            # a pipelined request's head trickles in while an earlier one is answered:
            # nothing may be written in between; its deadline starts when it is read
            return
        refuse(self.server.runtime.metrics, "header_timeout", self._peer)
        transport.write(REQUEST_TIMEOUT)
        transport.close()

    def _body_missed(self) -> None:
        self._body_timer = None
        call = self._call
        transport = self.transport
        if call is None or not call.waiting or transport is None:
            return
        refuse(self.server.runtime.metrics, "body_timeout", self._peer)
        call.missed_deadline = True
        if not call.answered:
            transport.write(REQUEST_TIMEOUT)
            call.answered = True
        transport.close()
        if call.task is not None:
            call.task.cancel()  # the handler waiting for that body

    def _idle(self) -> None:
        self._idle_timer = None
        if self.transport is not None and self._call is None:
            self.transport.close()

    # -- the drain ---------------------------------------------------------------------------

    def close_when_idle(self) -> None:
        """Close now if no request is being served; otherwise after its answer."""
        if self._call is None and self.transport is not None:
            self.transport.close()

    def cancel(self) -> asyncio.Task[None] | None:
        call = self._call
        if call is None or call.task is None:
            if self.transport is not None:
                self.transport.abort()
            return None
        call.task.cancel()
        return call.task


class ApiCall(Edge[int]):
    """One request served by :class:`ApiConnection`: the gateway's sink, and the lifecycle's
    view of it."""

    __slots__ = (
        "_answer_headers",
        "_held",
        "answered",
        "arrived",
        "authorization",
        "body",
        "connection",
        "ended",
        "keep_alive",
        "length",
        "missed_deadline",
        "parts",
        "path",
        "received",
        "request_id",
        "route",
        "sent_at",
        "status_code",
        "streaming",
        "task",
        "waiting",
    )

    def __init__(
        self,
        connection: ApiConnection,
        route: Endpoint | str,
        path: str,
        authorization: str | None,
        length: int,
        keep_alive: bool,
    ) -> None:
        self.connection = connection
        self.route = route
        self.path = path
        self.authorization = authorization
        self.length = length
        self.keep_alive = keep_alive
        self.body = b""
        self.waiting = False
        """Its body is still arriving, in ``parts``."""
        self.parts: list[bytes] = []
        self.received = 0
        self.arrived: asyncio.Future[None] | None = None
        self.task: asyncio.Task[None] | None = None
        self.request_id = ""
        self.status_code = 0
        self.answered = False
        """Bytes of the answer were written or handed to the settlement writer."""
        self.streaming = False
        self.ended = False
        self.missed_deadline = False
        self.sent_at: float | None = None
        self._held = b""
        """A stream's head, held back until its first event (one write, not two)."""
        self._answer_headers: Mapping[str, str] = {}

    # -- handlers ----------------------------------------------------------------------------

    async def json(self, exchange: Exchange) -> int:
        self.request_id = exchange.request_id
        runtime = self.connection.server.runtime
        assert isinstance(self.route, Endpoint)
        await api.serve_json(
            runtime, self.route, exchange, self.authorization, self.read_body, self
        )
        return self.status_code or 499

    async def models(self, exchange: Exchange) -> int:
        self.request_id = exchange.request_id
        runtime = self.connection.server.runtime
        if self.waiting:
            await self.read_body()  # a GET's body is read and ignored, as aiohttp does
        body = await api.list_models(runtime, exchange, self.authorization)
        await self.respond(200, body, "application/json", exchange.headers)
        return 200

    async def read_body(self) -> bytes:
        if self.waiting:
            self.arrived = asyncio.get_running_loop().create_future()
            await self.arrived
        return self.body

    # -- the lifecycle's Edge ----------------------------------------------------------------

    def status(self, response: int) -> int:
        return response

    def error(self, error: BastionError, exchange: Exchange) -> int:
        if self.answered:
            return self.status_code  # the head is already sent: nothing more can be said
        self.request_id = exchange.request_id
        # a stream's head held back for its first event is dropped: the error is the answer
        self._held = b""
        self.streaming = False
        body = orjson.dumps(error.envelope())
        headers = {**exchange.headers, **error.headers()}
        self._send(self._head(error.status, "application/json", headers, len(body)) + body)
        self.status_code = error.status
        return error.status

    def gone(self) -> int:
        return 499

    def head_sent(self) -> float | None:
        return self.sent_at

    def timed_out(self) -> bool:
        return self.missed_deadline

    # -- the gateway's Sink ------------------------------------------------------------------

    @property
    def is_streaming(self) -> bool:
        return self.streaming

    async def respond(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: Mapping[str, str],
        durable: Awaitable[object] | None = None,
        delivery: Delivery | None = None,
    ) -> None:
        data = self._head(status, content_type, headers, len(body)) + body
        self.status_code = status
        self._answer_headers = headers
        if durable is None:
            self._send(data)
            return
        self.sent_at = time.perf_counter()
        await self._after_commit(data, durable, delivery, b"")

    async def open_stream(self, headers: Mapping[str, str]) -> None:
        self._live()
        self._held = self._head(200, "text/event-stream", headers, None)
        self.status_code = 200
        self.streaming = True
        self.sent_at = time.perf_counter()

    async def write(self, data: bytes) -> None:
        if not data:
            return
        transport = self._live()
        held, self._held = self._held, b""
        transport.write(held + chunk(data) if held else chunk(data))
        self.answered = True
        if self.connection.paused:  # most writes: no coroutine call to find nothing to wait
            await self._drain()

    async def close_stream(
        self,
        final: bytes = b"",
        durable: Awaitable[object] | None = None,
        delivery: Delivery | None = None,
        failure: bytes = b"",
    ) -> None:
        if not self.streaming or self.ended:
            return
        held, self._held = self._held, b""
        data = held + chunk(final) + _END
        if durable is None:
            self._send(data)
            self.ended = True
            return
        await self._after_commit(data, durable, delivery, held + chunk(failure) + _END)
        self.ended = True

    # -- writing -----------------------------------------------------------------------------

    def _live(self) -> asyncio.Transport:
        transport = self.connection.transport
        if transport is None or transport.is_closing():
            raise ClientGoneError()
        return transport

    def _send(self, data: bytes) -> None:
        self._live().write(data)
        self.answered = True
        if self.sent_at is None:
            self.sent_at = time.perf_counter()

    async def _drain(self) -> None:
        try:
            await self.connection.drain()
        except ConnectionError as exc:
            raise ClientGoneError() from exc

    async def _after_commit(
        self,
        data: bytes,
        durable: Awaitable[object],
        delivery: Delivery | None,
        failure: bytes,
    ) -> None:
        """Commit before completion: ``data`` (the answer, or a stream's last bytes) leaves
        the moment the charge is durable (handed to the settlement writer when it can take
        them: see :mod:`bastion.core.delivery`), or never, if the charge fails: then a 503
        (a held-back answer) or the ``failure`` event (a stream), and the error is raised."""
        transport = self._live()
        handed = False
        if delivery is not None and can_hand_over(delivery, transport):
            handed = hand_over(delivery, transport, data)
            self.answered = True
        try:
            await durable
        except BaseException as exc:
            self.answered = True
            self.ended = True
            headers = {"x-request-id": self.request_id, **self._answer_headers}
            unbilled(transport, exc, failure if self.streaming else None, headers)
            raise
        if not handed and not transport.is_closing():
            transport.write(data)  # the commit came first: the bytes go now it succeeded
        self.answered = True

    def _head(
        self, status: int, content_type: str, headers: Mapping[str, str], length: int | None
    ) -> bytes:
        parts = [
            _STATUS_LINES[status],
            f"Content-Type: {content_type}\r\n",
            "Transfer-Encoding: chunked\r\n" if length is None else f"Content-Length: {length}\r\n",
            f"Date: {http_date()}\r\nx-request-id: {self.request_id}\r\n",
        ]
        parts += [f"{name}: {value}\r\n" for name, value in headers.items()]
        if not self.keep_alive:
            parts.append("Connection: close\r\n")
        parts.append("\r\n")
        return "".join(parts).encode("latin-1")

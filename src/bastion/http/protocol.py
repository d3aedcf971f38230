"""The HTTP/1.1 connection handler of every listener: aiohttp's, with deadlines it lacks.

aiohttp bounds header size and count, and closes idle kept-alive connections, but has no
deadline for *receiving* a request: a client trickling one header byte at a time (slowloris)
or one body byte at a time (slow POST) would hold its connection, and whatever the request
reserved, for as long as it liked.  :class:`GuardedRequestHandler` adds both:

- **headers**: from a connection's first moment, and from the first byte of each following
  request on a kept-alive connection, the complete header block must arrive within
  ``listener.header_timeout_s``;
- **body**: once the headers are in, the whole body must arrive within
  ``listener.body_timeout_s``.

Past either deadline the client gets ``408`` (JSON envelope, code ``request_timeout``) when
nothing was answered yet, and the connection is closed; a handler waiting for that body is
cancelled.  Requests the parser refuses (malformed, smuggling attempts, over-long lines, too
many headers) are answered ``400`` in the JSON envelope and the connection is closed; they are
logged without their content, which may hold a credential.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web, web_protocol, web_server
from aiohttp.streams import StreamReader
from aiohttp.web_request import BaseRequest

from bastion.observability.metrics import Metrics

log = logging.getLogger("bastion.http")

MAX_LINE_SIZE = 8190
MAX_FIELD_SIZE = 8190
MAX_HEADERS = 100

TIMED_OUT: web.RequestKey[str] = web.RequestKey("timed_out")
"""Set on a request whose body missed its deadline (the handler is then cancelled)."""


@dataclass(frozen=True, slots=True)
class Deadlines:
    header_timeout_s: float
    body_timeout_s: float
    metrics: Metrics | None = None


def _envelope(status: int, code: str, message: str) -> bytes:
    kind = "invalid_request_error" if status < 500 else "api_error"
    return orjson.dumps({"error": {"message": message, "type": kind, "code": code}})


def _raw_response(status: int, reason: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


REQUEST_TIMEOUT = _raw_response(
    408,
    "Request Timeout",
    _envelope(
        408, "request_timeout", "The request did not arrive in time; the connection is closed."
    ),
)


class GuardedRequestHandler(web_protocol.RequestHandler):
    """aiohttp's request handler plus header and body receipt deadlines."""

    __slots__ = ("_awaiting", "_body", "_body_timer", "_deadlines", "_header_timer")

    def __init__(self, manager: web_server.Server, *, deadlines: Deadlines, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._deadlines = deadlines
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._body: StreamReader | None = None
        self._awaiting = True  # between requests: the next byte starts a header deadline

    # -- the deadlines ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # aiohttp closes a connection that sends nothing after ``keepalive_timeout``, silently;
        # the header deadline covers that case (sooner, and with a 408)
        if self._keepalive_handle is not None:
            self._keepalive_handle.cancel()
            self._keepalive_handle = None
        self._arm_headers()

    def data_received(self, data: bytes) -> None:
        before = self._request_count
        super().data_received(data)
        if self._request_count == before:
            if self._body is not None and self._body.is_eof():
                self._body_done()
            elif data and self._awaiting and self._header_timer is None:
                # the first bytes of a request whose headers are not all in: its deadline
                # starts now (a request whose headers came whole in these bytes needs none,
                # which spares the usual request a timer armed and cancelled at once)
                self._arm_headers()
        else:
            self._cancel_headers()
            payload = self._messages[-1][1] if self._messages else None
            if isinstance(payload, StreamReader) and not payload.is_eof():
                self._awaiting = False
                self._body = payload
                if self._body_timer is None:
                    self._body_timer = self._loop.call_later(
                        self._deadlines.body_timeout_s, self._body_missed
                    )
            else:
                self._body_done()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_headers()
        self._body_done()
        super().connection_lost(exc)

    def _arm_headers(self) -> None:
        self._header_timer = self._loop.call_later(
            self._deadlines.header_timeout_s, self._headers_missed
        )

    def _cancel_headers(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _body_done(self) -> None:
        self._body = None
        self._awaiting = True
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _headers_missed(self) -> None:
        self._header_timer = None
        if self.transport is None or self._force_close:
            return
        if self._request_in_progress or self._messages:
            # a pipelined request's headers trickle in while an earlier one is answered:
            # nothing may be written in between, look again later
            self._arm_headers()
            return
        self._refuse("header_timeout")
        if self.transport is not None:
            self.transport.write(REQUEST_TIMEOUT)
        self.force_close()

    def _body_missed(self) -> None:
        self._body_timer = None
        body, self._body = self._body, None
        if body is None or body.is_eof() or self.transport is None:
            return
        self._refuse("body_timeout")
        request = self._current_request
        if request is not None:
            request[TIMED_OUT] = "body"
            if request.writer.output_size == 0:
                self.transport.write(REQUEST_TIMEOUT)
        self.force_close()  # the handler waiting for the body is cancelled

    def _refuse(self, reason: str) -> None:
        refuse(self._deadlines.metrics, reason, self._peer())

    def _peer(self) -> str | None:
        peer = self.peername
        if isinstance(peer, tuple) and peer:
            return str(peer[0])
        return None

    # -- requests the parser refused ---------------------------------------------------------

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """The contract's JSON envelope instead of aiohttp's text page; the request's bytes,
        which may carry a credential, are never logged."""
        if status < 500:
            reason = "bad_request"
            code, text = "invalid_request", _bad_request_text(exc)
            log.info(
                "malformed request refused",
                extra={"peer": self._peer(), "status": status, "reason": type(exc).__name__},
            )
        else:
            reason = "server_error"
            code, text = "internal_error", "Internal error."
            log.error("error handling a request", exc_info=exc)
        if self._deadlines.metrics is not None:
            self._deadlines.metrics.protocol_error(reason)
        if request.writer.output_size > 0:
            raise ConnectionError("the response had begun: the connection is dropped")
        response = web.Response(
            status=status, body=_envelope(status, code, text), content_type="application/json"
        )
        response.force_close()
        return response


def refuse(metrics: Metrics | None, reason: str, peer: str | None) -> None:
    """A connection closed for a receipt deadline: counted and logged (without its bytes)."""
    if metrics is not None:
        metrics.protocol_error(reason)
    log.info("connection closed: %s", reason.replace("_", " "), extra={"peer": peer})


def _bad_request_text(exc: BaseException | None) -> str:
    name = type(exc).__name__ if exc is not None else ""
    if name == "LineTooLong":
        return "A request line or header is too long."
    if "Header" in name or name == "BadHttpMessage":
        return "The request's headers are not valid HTTP/1.1."
    return "The request is not valid HTTP/1.1."


class GuardedServer(web_server.Server):
    """aiohttp's low-level server, making :class:`GuardedRequestHandler` connections."""

    def __init__(self, handler: Any, *, deadlines: Deadlines, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.deadlines = deadlines

    def __call__(self) -> web_protocol.RequestHandler:
        return GuardedRequestHandler(
            self, loop=self._loop, deadlines=self.deadlines, **self._kwargs
        )


class GuardedAppRunner(web.AppRunner):
    """An ``AppRunner`` whose connections have receipt deadlines."""

    __slots__ = ("_deadlines",)

    def __init__(self, app: web.Application, *, deadlines: Deadlines, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._deadlines = deadlines

    async def _make_server(self) -> web_server.Server:
        plain = await super()._make_server()
        return GuardedServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=plain._loop,
            deadlines=self._deadlines,
            **plain._kwargs,
        )

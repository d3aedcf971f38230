"""The gateway's :class:`Sink` over an aiohttp request."""

from __future__ import annotations

from collections.abc import Awaitable, Coroutine, Mapping
from typing import Any

from aiohttp import web

from bastion.core.delivery import Delivery
from bastion.errors import BastionError
from bastion.gateway.sink import ClientGoneError
from bastion.http.raw import can_hand_over, chunk, hand_over, unbilled


class _Capture:
    """Stands in for the connection while aiohttp renders a response's last bytes, so they
    can be handed to the settlement writer instead of sent (aiohttp's state advances as if
    they were)."""

    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: Any) -> None:
        self.parts.append(bytes(data))

    def writelines(self, chunks: Any) -> None:
        self.parts.extend(bytes(c) for c in chunks)

    def is_closing(self) -> bool:
        return False


class _Stream(web.StreamResponse):
    """An event stream whose head leaves with its first event, in one write.

    ``open_stream`` is called when the first event is in hand, so a head sent alone would
    only cost a system call and a packet of its own, and the client a wake-up between the
    head and its first byte.  aiohttp's ``Response`` holds its head back the same way (the
    class attribute is aiohttp's switch for it); a stream that ends without an event sends
    its head with the end.
    """

    _send_headers_immediately = False


class AiohttpSink:
    __slots__ = ("_request", "_stream", "response")

    def __init__(self, request: web.Request) -> None:
        self._request = request
        self._stream: web.StreamResponse | None = None
        self.response: web.StreamResponse | None = None

    @property
    def is_streaming(self) -> bool:
        return self._stream is not None

    async def respond(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: Mapping[str, str],
        durable: Awaitable[object] | None = None,
        delivery: Delivery | None = None,
    ) -> None:
        # A Response (not a StreamResponse) holds its head back until the body is written,
        # so the whole answer leaves in one write once the charge is durable, and if the
        # charge cannot be written the client gets a 503 instead.
        response = web.Response(
            status=status, body=body, content_type=content_type, headers=headers
        )
        self.response = response
        try:
            await response.prepare(self._request)
            if durable is None:
                await response.write_eof()
                return
            if await self._hand_over(response.write_eof(), delivery, durable, b""):
                return
            await self._durable(durable, b"")
            await response.write_eof()
        except (ConnectionError, RuntimeError) as exc:
            raise ClientGoneError() from exc

    async def open_stream(self, headers: Mapping[str, str]) -> None:
        stream = _Stream(status=200, headers=headers)
        stream.content_type = "text/event-stream"
        stream.enable_chunked_encoding()
        try:
            await stream.prepare(self._request)
        except (ConnectionError, RuntimeError) as exc:
            raise ClientGoneError() from exc
        self._stream = stream
        self.response = stream

    async def write(self, data: bytes) -> None:
        assert self._stream is not None
        try:
            await self._stream.write(data)
        except (ConnectionError, RuntimeError) as exc:
            raise ClientGoneError() from exc

    async def close_stream(
        self,
        final: bytes = b"",
        durable: Awaitable[object] | None = None,
        delivery: Delivery | None = None,
        failure: bytes = b"",
    ) -> None:
        stream = self._stream
        if stream is None:
            return
        try:
            if durable is None:
                await stream.write_eof(final)
                return
            if await self._hand_over(stream.write_eof(final), delivery, durable, failure):
                return
            try:
                await durable
            except BastionError:
                await stream.write_eof(failure)
                raise
            await stream.write_eof(final)
        except (ConnectionError, RuntimeError) as exc:
            raise ClientGoneError() from exc

    # -- commit before completion ----------------------------------------------------------

    async def _hand_over(
        self,
        render: Coroutine[Any, Any, None],
        delivery: Delivery | None,
        durable: Awaitable[object],
        failure: bytes,
    ) -> bool:
        """Render the response's last bytes and hand them to the settlement writer, which
        sends them right after the commit; then wait for the charge.  False, with nothing
        rendered, when they cannot be handed over: the caller then waits and sends."""
        transport = self._request.transport
        protocol = self._request.protocol
        if delivery is None or transport is None or not can_hand_over(delivery, transport):
            render.close()
            return False
        capture = _Capture()
        protocol.transport = capture  # type: ignore[assignment]
        try:
            await render
        finally:
            protocol.transport = transport
        data = b"".join(capture.parts)
        handed = hand_over(delivery, transport, data)
        await self._durable(durable, failure)
        if not handed and not transport.is_closing():
            transport.write(data)  # the commit came first: the bytes go now it succeeded
        return True

    async def _durable(self, durable: Awaitable[object], failure: bytes) -> None:
        """Wait for the charge.  If it cannot be written, nothing of the answer leaves: a
        held-back answer becomes a 503 (its head was never sent), a stream ends with the
        ``failure`` event (written raw when aiohttp believes the stream already ended)."""
        try:
            await durable
        except BaseException as exc:
            tail = None if self._stream is None else chunk(failure) + b"0\r\n\r\n"
            headers = self.response.headers if self.response is not None else {}
            unbilled(self._request.transport, exc, tail, headers)
            raise

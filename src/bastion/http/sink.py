"""The gateway's :class:`Sink` over an aiohttp request."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping

from aiohttp import web

from bastion.gateway.sink import ClientGoneError


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
    ) -> None:
        response = web.StreamResponse(status=status, headers=headers)
        response.content_type = content_type
        response.content_length = len(body)
        self.response = response
        try:
            # The head is built now but held back (aiohttp sends it with the first body
            # bytes), so once the charge is durable the whole answer leaves in one write.
            await response.prepare(self._request)
            if durable is not None:
                try:
                    await durable
                except BaseException:
                    if self._request.transport is not None:
                        self._request.transport.abort()  # the client must see no answer
                    raise
            await response.write(body)
            await response.write_eof()
        except (ConnectionError, RuntimeError) as exc:
            raise ClientGoneError() from exc

    async def open_stream(self, headers: Mapping[str, str]) -> None:
        stream = web.StreamResponse(status=200, headers=headers)
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

    async def close_stream(self, final: bytes = b"") -> None:
        if self._stream is not None:
            try:
                await self._stream.write_eof(final)
            except (ConnectionError, RuntimeError) as exc:
                raise ClientGoneError() from exc

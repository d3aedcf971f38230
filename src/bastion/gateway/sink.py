"""Where a response goes: the edge adapts its HTTP server to this, the gateway writes to it."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Protocol


class ClientGoneError(Exception):
    """The client closed the connection; nothing more can be delivered."""


class Sink(Protocol):
    async def respond(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: Mapping[str, str],
        durable: Awaitable[object] | None = None,
    ) -> None:
        """Send a complete response; if ``durable`` is given, its last byte only after it
        completes (and none of it, the connection aborted, if it fails)."""

    async def open_stream(self, headers: Mapping[str, str]) -> None:
        """Send the head of a 200 ``text/event-stream`` response."""

    async def write(self, data: bytes) -> None:
        """Send part of a stream now (no buffering); raises ClientGoneError."""

    async def close_stream(self, final: bytes = b"") -> None:
        """Send ``final`` and end the stream, in one write (the client sees both or neither)."""

    @property
    def is_streaming(self) -> bool: ...


class Exchange:
    """One HTTP exchange as the gateway sees it: its id, the response headers it adds (rate
    state), and the facts for the request's log line."""

    __slots__ = ("headers", "info", "request_id")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.headers: dict[str, str] = {}
        self.info: dict[str, object] = {}

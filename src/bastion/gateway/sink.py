"""Where a response goes: the edge adapts its HTTP server to this, the gateway writes to it."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Protocol

from bastion.core.delivery import Delivery

NOT_BILLED = "The request could not be billed; it was not charged. Retry shortly."


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
        delivery: Delivery | None = None,
    ) -> None:
        """Send a complete response; if ``durable`` is given, only after it completes (the
        bytes may be handed to ``delivery``, to leave the moment the charge commits), and
        none of it if it fails: a 503 instead, and the error raised."""

    async def open_stream(self, headers: Mapping[str, str]) -> None:
        """Send the head of a 200 ``text/event-stream`` response."""

    async def write(self, data: bytes) -> None:
        """Send part of a stream now (no buffering); raises ClientGoneError."""

    async def close_stream(
        self,
        final: bytes = b"",
        durable: Awaitable[object] | None = None,
        delivery: Delivery | None = None,
        failure: bytes = b"",
    ) -> None:
        """Send ``final`` and end the stream, in one write (the client sees both or neither);
        with ``durable``, as :meth:`respond` does: if it fails, the stream ends with
        ``failure`` instead and the error is raised."""

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

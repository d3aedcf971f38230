"""Server-sent events: split a byte stream into events, read their fields, frame new ones.

Only what a relay needs: events are kept as raw bytes so that an event Bastion does not need
to change is forwarded byte for byte.
"""

from __future__ import annotations

import re

_BOUNDARY = re.compile(rb"\r\n\r\n|\n\n|\r\r")


class EventSplitter:
    """Incremental splitter: feed chunks as they arrive, get complete events back."""

    __slots__ = ("_buffer", "max_event_bytes")

    def __init__(self, max_event_bytes: int = 16 * 1024 * 1024) -> None:
        self._buffer = b""
        self.max_event_bytes = max_event_bytes

    def feed(self, chunk: bytes) -> list[bytes]:
        data = self._buffer + chunk if self._buffer else chunk
        if b"\r" not in data:
            # The usual stream (vLLM, OpenAI): ``\n\n`` is then the only boundary, and a
            # split finds it as the pattern would, left to right (an eighth of the time).
            events = data.split(b"\n\n")
            self._buffer = events.pop()
            if b"" in events:
                events = [event for event in events if event]
        else:
            events = []
            start = 0
            for match in _BOUNDARY.finditer(data):
                event = data[start : match.start()]
                if event:
                    events.append(event)
                start = match.end()
            self._buffer = data[start:]
        if len(self._buffer) > self.max_event_bytes:
            raise ValueError("server-sent event larger than the limit")
        return events

    def rest(self) -> bytes:
        """What is left when the stream ends (an unterminated last event, if any)."""
        rest, self._buffer = self._buffer, b""
        return rest.strip()


def fields(event: bytes) -> tuple[bytes | None, bytes | None]:
    """(event type, data) of one event; several ``data:`` lines are joined with ``\\n``."""
    if event.startswith(b"data: ") and b"\n" not in event and b"\r" not in event:
        return None, event[6:]  # one data line, the usual event: no line loop
    kind: bytes | None = None
    data: list[bytes] = []
    for line in event.splitlines():
        if line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
        elif line.startswith(b"event:"):
            value = line[6:]
            kind = value[1:] if value.startswith(b" ") else value
    return kind, (b"\n".join(data) if data else None)


def frame(data: bytes, kind: bytes | None = None) -> bytes:
    """One event, terminated, ready to write."""
    head = b"event: " + kind + b"\n" if kind else b""
    body = b"".join(b"data: " + line + b"\n" for line in data.split(b"\n"))
    return head + body + b"\n"


DONE = b"data: [DONE]\n\n"

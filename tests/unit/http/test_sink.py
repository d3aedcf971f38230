"""The aiohttp sink writes what the gateway hands it, in as few writes as it can."""

from __future__ import annotations

import asyncio
from typing import Any
from unittest.mock import Mock

from aiohttp.http_writer import StreamWriter
from aiohttp.test_utils import make_mocked_request

from bastion.http.sink import AiohttpSink


class Wire:
    """A transport that records each write (each would be a system call and a packet)."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def writelines(self, chunks: Any) -> None:
        self.writes.append(b"".join(bytes(c) for c in chunks))

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, _name: str, default: Any = None) -> Any:
        return default


def _sink() -> tuple[AiohttpSink, Wire]:
    wire = Wire()
    protocol = Mock(transport=wire, _paused=False)  # a connection never short of buffer
    writer = StreamWriter(protocol, asyncio.get_running_loop())
    request = make_mocked_request(
        "POST", "/v1/chat/completions", transport=wire, protocol=protocol, writer=writer
    )
    return AiohttpSink(request), wire


async def test_a_stream_head_leaves_with_its_first_event_in_one_write() -> None:
    sink, wire = _sink()
    await sink.open_stream({"Cache-Control": "no-cache"})
    assert wire.writes == []  # nothing alone: the head waits for the first event
    await sink.write(b'data: {"choices":[]}\n\n')
    assert len(wire.writes) == 1
    (first,) = wire.writes
    assert first.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Type: text/event-stream" in first
    assert first.endswith(b'\r\n\r\n16\r\ndata: {"choices":[]}\n\n\r\n')
    await sink.write(b"data: [DONE]\n\n")
    assert wire.writes[1] == b"e\r\ndata: [DONE]\n\n\r\n"  # later events: one write each
    await sink.close_stream()
    assert wire.writes[2] == b"0\r\n\r\n"


async def test_a_stream_that_ends_without_an_event_still_sends_its_head() -> None:
    sink, wire = _sink()
    await sink.open_stream({})
    await sink.close_stream(b"data: [DONE]\n\n")
    assert len(wire.writes) == 1
    assert wire.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert wire.writes[0].endswith(b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n")

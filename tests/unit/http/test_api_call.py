"""The API lane's sink (``ApiCall``) writes what the gateway hands it, in as few writes as it
can, and never a second answer."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

import orjson
import pytest

from bastion.core.catalog import Endpoint
from bastion.core.delivery import Delivery
from bastion.errors import InvalidRequestError, StoreUnavailableError
from bastion.gateway.sink import ClientGoneError, Exchange
from bastion.http.listener import ApiCall, ApiConnection, ApiServer


class Wire:
    """A transport that records each write (each would be a system call and a packet)."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closing = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, _name: str, default: Any = None) -> Any:
        return default


class Connection:
    def __init__(self) -> None:
        self.transport = Wire()
        self.paused = False

    async def drain(self) -> None:
        return None


def _call(keep_alive: bool = True) -> tuple[ApiCall, Wire]:
    connection = Connection()
    call = ApiCall(
        cast("ApiConnection", connection),
        Endpoint.CHAT,
        "/v1/chat/completions",
        "Bearer x",
        0,
        keep_alive,
    )
    call.request_id = "req_1"
    return call, connection.transport


def _split(data: bytes) -> tuple[list[str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    return head.decode("latin-1").split("\r\n"), body


async def test_an_answer_leaves_in_one_write_with_its_head() -> None:
    call, wire = _call()
    await call.respond(200, b'{"ok":true}', "application/json", {"x-ratelimit-limit-requests": "9"})
    (data,) = wire.writes
    lines, body = _split(data)
    assert lines[0] == "HTTP/1.1 200 OK"
    assert "Content-Type: application/json" in lines
    assert "Content-Length: 11" in lines
    assert "x-request-id: req_1" in lines
    assert "x-ratelimit-limit-requests: 9" in lines
    assert not any(line.startswith("Connection:") for line in lines)
    assert body == b'{"ok":true}'
    assert call.status(call.status_code) == 200


async def test_connection_close_is_announced() -> None:
    call, wire = _call(keep_alive=False)
    await call.respond(200, b"{}", "application/json", {})
    lines, _ = _split(wire.writes[0])
    assert "Connection: close" in lines


async def test_a_stream_head_leaves_with_its_first_event_in_one_write() -> None:
    call, wire = _call()
    await call.open_stream({"Cache-Control": "no-cache"})
    assert wire.writes == []  # nothing alone: the head waits for the first event
    await call.write(b'data: {"choices":[]}\n\n')
    (first,) = wire.writes
    assert first.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Type: text/event-stream\r\n" in first
    assert b"Transfer-Encoding: chunked\r\n" in first
    assert first.endswith(b'\r\n\r\n16\r\ndata: {"choices":[]}\n\n\r\n')
    await call.write(b"")  # nothing to send: no empty chunk (it would end the stream)
    await call.write(b"data: [DONE]\n\n")
    assert wire.writes[1] == b"e\r\ndata: [DONE]\n\n\r\n"
    await call.close_stream()
    assert wire.writes[2] == b"0\r\n\r\n"
    await call.close_stream()  # once only
    assert len(wire.writes) == 3


async def test_an_error_before_the_first_event_is_the_answer() -> None:
    call, wire = _call()
    await call.open_stream({})
    exchange = Exchange("req_1")
    exchange.headers["x-ratelimit-remaining-requests"] = "3"
    status = call.error(InvalidRequestError("bad"), exchange)
    assert status == 400
    (data,) = wire.writes
    lines, body = _split(data)
    assert lines[0] == "HTTP/1.1 400 Bad Request"
    assert "x-ratelimit-remaining-requests: 3" in lines
    assert orjson.loads(body)["error"]["message"] == "bad"
    assert not call.is_streaming


async def test_no_second_answer_after_the_first() -> None:
    call, wire = _call()
    await call.respond(200, b"{}", "application/json", {})
    assert call.error(InvalidRequestError("late"), Exchange("req_1")) == 200
    assert len(wire.writes) == 1


async def test_a_closed_connection_is_a_client_gone() -> None:
    call, wire = _call()
    wire.closing = True
    with pytest.raises(ClientGoneError):
        await call.respond(200, b"{}", "application/json", {})
    with pytest.raises(ClientGoneError):
        await call.open_stream({})
    call, wire = _call()
    await call.open_stream({})
    wire.closing = True
    with pytest.raises(ClientGoneError):
        await call.write(b"data: x\n\n")


async def test_an_answer_waits_for_its_charge_and_is_handed_to_the_writer() -> None:
    call, wire = _call()
    charge: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    delivery = Delivery()
    answering = asyncio.ensure_future(
        call.respond(200, b"{}", "application/json", {}, charge, delivery)
    )
    await asyncio.sleep(0)
    assert wire.writes == []  # not before the commit
    delivery.complete()  # the writer, right after the commit: the bytes leave now
    (data,) = wire.writes
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    charge.set_result(None)
    await answering
    assert len(wire.writes) == 1  # and only once


async def test_a_charge_that_fails_turns_the_answer_into_a_503() -> None:
    call, wire = _call()
    charge: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    charge.set_exception(StoreUnavailableError())
    with pytest.raises(StoreUnavailableError):
        await call.respond(
            200, b"{}", "application/json", {"x-ratelimit-limit-requests": "9"}, charge
        )
    (data,) = wire.writes
    lines, body = _split(data)
    assert lines[0].startswith("HTTP/1.1 503")
    assert "x-request-id: req_1" in lines
    assert "x-ratelimit-limit-requests: 9" in lines
    assert orjson.loads(body)["error"]["code"] == StoreUnavailableError.code
    assert wire.closing
    assert call.error(StoreUnavailableError(), Exchange("req_1")) == 200  # nothing more


async def test_a_stream_whose_charge_fails_ends_with_the_failure_event() -> None:
    call, wire = _call()
    await call.open_stream({})
    await call.write(b"data: a\n\n")
    charge: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    charge.set_exception(StoreUnavailableError())
    with pytest.raises(StoreUnavailableError):
        await call.close_stream(b"data: [DONE]\n\n", charge, None, b"data: failed\n\n")
    assert wire.writes[-1] == b"e\r\ndata: failed\n\n\r\n0\r\n\r\n"


class Server:
    """What a connection reads of its server: the listener's deadlines, the open set."""

    def __init__(self) -> None:
        self.listener = SimpleNamespace(header_timeout_s=10.0, keepalive_timeout_s=10.0)
        self.connections: set[ApiConnection] = set()

    def forget(self, connection: ApiConnection) -> None:
        self.connections.discard(connection)


def _streaming() -> tuple[ApiConnection, ApiCall, Wire]:
    connection = ApiConnection(cast("ApiServer", Server()))
    wire = Wire()
    connection.connection_made(cast("asyncio.Transport", wire))
    call = ApiCall(connection, Endpoint.CHAT, "/v1/chat/completions", None, 0, True)
    return connection, call, wire


async def test_a_full_send_buffer_holds_the_stream_back_until_it_drains() -> None:
    connection, call, wire = _streaming()
    await call.open_stream({})
    connection.pause_writing()
    writing = asyncio.ensure_future(call.write(b"data: a\n\n"))
    await asyncio.sleep(0.01)
    assert len(wire.writes) == 1  # written, then waiting for the buffer to drain
    assert not writing.done()
    connection.resume_writing()
    await writing
    connection.connection_lost(None)


async def test_a_client_gone_while_the_buffer_is_full_ends_the_stream() -> None:
    connection, call, _ = _streaming()
    await call.open_stream({})
    connection.pause_writing()
    writing = asyncio.ensure_future(call.write(b"data: a\n\n"))
    await asyncio.sleep(0.01)
    connection.connection_lost(ConnectionResetError())
    with pytest.raises(ClientGoneError):
        await writing

"""What both response writers (the API lane's and aiohttp's sink) put on a connection
themselves: chunk framing, the ``Date`` header, and commit before completion's parts: the
hand-over of an answer's last bytes to the settlement writer, and the 503 or failure event
that replaces them when the charge cannot be written."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from email.utils import formatdate
from typing import Any

import orjson

from bastion.core.delivery import Delivery
from bastion.errors import BastionError
from bastion.gateway.sink import NOT_BILLED

_date: tuple[int, str] = (0, "")


def http_date() -> str:
    """The ``Date`` header's value, formatted once a second."""
    global _date
    now = int(time.time())
    if _date[0] != now:
        _date = (now, formatdate(now, usegmt=True))
    return _date[1]


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data) if data else b""


def not_billed(error: BastionError, headers: Mapping[str, str]) -> bytes:
    """A complete error response for an answer held back while its charge was written, and
    the charge failed: the request id and rate state of the answer's ``headers`` are kept."""
    body = orjson.dumps({"error": {"message": NOT_BILLED, "type": error.type, "code": error.code}})
    lines = [
        f"HTTP/1.1 {error.status} Service Unavailable",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    lines += [
        f"{name}: {value}"
        for name, value in headers.items()
        if name.lower() == "x-request-id" or name.lower().startswith("x-ratelimit-")
    ]
    lines += [f"{name}: {value}" for name, value in error.headers().items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def duplicate(transport: Any) -> int:
    """A duplicate of the connection's descriptor for the writer thread, or -1 (TLS, or no
    socket): then the event loop sends, right after the commit."""
    if transport.get_extra_info("sslcontext") is not None:
        return -1
    sock = transport.get_extra_info("socket")
    if sock is None:
        return -1
    try:
        return os.dup(sock.fileno())
    except OSError:
        return -1


def can_hand_over(delivery: Delivery, transport: Any) -> bool:
    """The settlement writer can take this answer's last bytes: it has not finished with the
    charge, and nothing queued on the connection would be overtaken."""
    return (
        not delivery.done
        and not transport.is_closing()
        and not transport.get_write_buffer_size()  # earlier bytes still queued: keep order
    )


def hand_over(delivery: Delivery, transport: Any, data: bytes) -> bool:
    """Give ``data`` to the settlement writer, to leave right after the commit; False if
    the writer had already finished (the caller sends after the charge's outcome)."""
    fd = duplicate(transport) if delivery.from_thread else -1
    return delivery.hand_over(data, transport, fd)


def unbilled(
    transport: Any, exc: BaseException, tail: bytes | None, headers: Mapping[str, str]
) -> None:
    """The charge could not be written: nothing of the answer leaves.  A stream ends with
    ``tail`` (its framed failure event); a held-back answer becomes the 503 of
    :func:`not_billed` and the connection closes; anything but a BastionError aborts."""
    if transport is None or transport.is_closing():
        return
    if not isinstance(exc, BastionError):
        transport.abort()
    elif tail is not None:
        transport.write(tail)
    else:
        transport.write(not_billed(exc, headers))
        transport.close()

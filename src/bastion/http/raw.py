"""Bytes both response writers put on a connection themselves: chunk framing, the 503 that
replaces an answer whose charge could not be written, the descriptor the settlement writer
sends from, and the ``Date`` header."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from email.utils import formatdate
from typing import Any

import orjson

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

"""The injected faults that are answered without running the endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

from aiohttp import web

from bastion.simulator.replies import json_response

# Tests assert that the gateway never shows this string to its clients.
INTERNAL_DETAIL = "SIMULATED-UPSTREAM-INTERNAL-DETAIL"

# How often a hanging request looks whether its client is still there. Only matters when
# aiohttp's handler cancellation is off; with it on, the hang is cancelled at once.
DISCONNECT_POLL_S = 0.05

_HTML = (
    b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>"
    b"<body><h1>Bad Gateway</h1><p>bastion-simulator: simulated wrong_content_type fault"
    b"</p></body></html>\n"
)


def internal_error() -> web.Response:
    return json_response(
        {
            "error": {
                "message": (
                    f"simulated upstream failure [{INTERNAL_DETAIL}: worker=3"
                    " engine=/opt/sim/engine.py:142 kv_cache=exhausted]"
                ),
                "type": "internal_server_error",
                "param": None,
                "code": "simulated_fault",
            }
        },
        status=500,
    )


def wrong_content_type() -> web.Response:
    return web.Response(body=_HTML, content_type="text/html")


def reset_connection(request: web.Request) -> web.Response:
    """Drop the connection with a TCP RST and no response at all.

    The returned response is never sent: aiohttp's write fails on the closed transport and
    it treats that as the client having gone away, quietly.
    """
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Linger on with a zero timeout makes close() send RST instead of FIN; if the
            # option is refused, a FIN still ends the exchange without a response.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    return web.Response()


async def wait_for_disconnect(request: web.Request) -> None:
    """Hang until the client closes the connection (or this task is cancelled)."""
    while True:
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        await asyncio.sleep(DISCONNECT_POLL_S)

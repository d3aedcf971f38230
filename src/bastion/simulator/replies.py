"""Small constructors for the responses every endpoint sends."""

from __future__ import annotations

import os
import time

import orjson
from aiohttp import web

from bastion.simulator.errors import SimulatorError

JSON = "application/json"


def json_response(payload: object, status: int = 200, *, options: int = 0) -> web.Response:
    # orjson + a raw body skips aiohttp's json_response, which goes through the stdlib encoder
    body = orjson.dumps(payload, option=options)
    return web.Response(body=body, status=status, content_type=JSON)


def error_response(error: SimulatorError) -> web.Response:
    return json_response(error.body(), status=error.status)


def new_id(prefix: str) -> str:
    return prefix + os.urandom(12).hex()


def now() -> int:
    return int(time.time())

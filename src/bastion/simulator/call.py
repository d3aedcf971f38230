"""One request to a /v1 endpoint, and the wrapper every /v1 handler runs in.

The wrapper does, in order: count and journal the request, check the key, read and parse
the JSON body (so that faulted requests are journaled whole), apply the fault picked for
this request, then run the endpoint. Handlers raise SimulatorError for bad input; the
wrapper answers it in OpenAI's envelope.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bastion.simulator import faults
from bastion.simulator.control import Control
from bastion.simulator.errors import SimulatorError
from bastion.simulator.options import SimulatorOptions
from bastion.simulator.params import Body, parse_body
from bastion.simulator.replies import error_response


@dataclass(slots=True)
class Call:
    request: web.Request
    control: Control
    options: SimulatorOptions
    body: Body  # the parsed JSON body; empty for GET and multipart endpoints
    body_size: int  # bytes of the JSON body: the upper bound of prompt tokens
    entry: dict[str, Any]  # this request's journal entry; multipart fills its "body"
    stall: bool  # the stall fault was picked: streams hang after stall_after_chunks events


# JSON bodies up to this size (long prompts, large embedding batches); uploads are
# multipart, read as a stream with their own cap.
MAX_JSON_BODY = 32 * 1024 * 1024

Handler = Callable[[Call], Awaitable[web.StreamResponse]]
RequestHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _unauthorized() -> SimulatorError:
    return SimulatorError(
        "Incorrect API key provided to the simulated upstream",
        status=401,
        code="invalid_api_key",
    )


def _too_large() -> SimulatorError:
    return SimulatorError(
        f"request body is larger than {MAX_JSON_BODY} bytes",
        status=413,
        code="request_entity_too_large",
    )


def endpoint(control: Control, handler: Handler, *, json_body: bool = True) -> RequestHandler:
    async def run(request: web.Request) -> web.StreamResponse:
        entry: dict[str, Any] = {
            "method": request.method,
            "path": request.path,
            "headers": dict(request.headers),
            "body": None,
        }
        control.journal.append(entry)
        options = control.options
        key = options.api_key
        if key is not None and request.headers.get("Authorization") != "Bearer " + key:
            return error_response(_unauthorized())

        post = request.method == "POST"
        body: Body = {}
        size = 0
        bad_body: SimulatorError | None = None
        if json_body and post:
            try:
                raw = await request.read()
            except web.HTTPRequestEntityTooLarge:
                return error_response(_too_large())
            size = len(raw)
            try:
                body = parse_body(raw)
                entry["body"] = body
            except SimulatorError as exc:
                bad_body = exc

        fault = control.pick_fault() if post else None
        if fault == "reset":
            return faults.reset_connection(request)
        if fault == "5xx":
            return faults.internal_error()
        if fault == "wrong_content_type":
            return faults.wrong_content_type()
        if fault == "slow_first_byte":
            await asyncio.sleep(options.slow_first_byte_ms / 1000.0)
        stall = fault == "stall"
        if stall and body.get("stream") is not True:
            await faults.wait_for_disconnect(request)
            return web.Response()  # never sent: the client is gone
        if bad_body is not None:
            return error_response(bad_body)

        call = Call(request, control, options, body, size, entry, stall)
        try:
            return await handler(call)
        except SimulatorError as exc:
            return error_response(exc)

    async def handle(request: web.Request) -> web.StreamResponse:
        stats = control.stats
        stats.requests_total += 1
        stats.in_flight += 1
        try:
            return await run(request)
        finally:
            stats.in_flight -= 1

    return handle

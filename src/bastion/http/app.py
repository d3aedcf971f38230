"""The public listener's aiohttp application: routes, the error envelope, request ids.

The API's hot path is served by the listener's own connection handler
(:mod:`bastion.http.listener`); this application serves everything else, and the API too on
a connection that was handed to it."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from bastion.dashboard import app as dashboard
from bastion.errors import BastionError
from bastion.gateway.sink import Exchange
from bastion.http.envelope import error_response, from_http_exception
from bastion.http.keys import EXCHANGE, PREPARED, RUNTIME
from bastion.http.lifecycle import Edge, run
from bastion.http.protocol import TIMED_OUT
from bastion.http.routes import audio, health, openai, openapi, tts
from bastion.http.transport import https_guard
from bastion.runtime import Runtime

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

HEAD_SENT: web.RequestKey[float] = web.RequestKey("head_sent")
"""When the response head left (``time.perf_counter``): the time to first byte."""


class _AiohttpEdge(Edge[web.StreamResponse]):
    __slots__ = ("_request",)

    def __init__(self, request: web.Request) -> None:
        self._request = request

    def status(self, response: web.StreamResponse) -> int:
        return response.status

    def error(self, error: BastionError, exchange: Exchange) -> web.StreamResponse:
        if PREPARED in self._request:
            return self._request[PREPARED]  # the head is already sent: nothing more to say
        return error_response(error, exchange.headers)

    def gone(self) -> web.StreamResponse:
        return web.Response(status=499)

    def head_sent(self) -> float | None:
        return self._request.get(HEAD_SENT)

    def timed_out(self) -> bool:
        return TIMED_OUT in self._request


@web.middleware
async def lifecycle(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The public listener's lifecycle (:mod:`bastion.http.lifecycle`) for what aiohttp
    serves; aiohttp's own 404/405/413 become the contract's errors."""

    async def serve(exchange: Exchange) -> web.StreamResponse:
        request[EXCHANGE] = exchange
        try:
            return await handler(request)
        except web.HTTPException as exc:
            raise from_http_exception(exc, request.path) from None

    runtime: Runtime = request.app[RUNTIME]
    return await run(runtime, request.method, request.path, _AiohttpEdge(request), serve)


async def _add_request_id(request: web.Request, response: web.StreamResponse) -> None:
    exchange = request.get(EXCHANGE)
    if exchange is not None:
        response.headers["x-request-id"] = exchange.request_id
        request[PREPARED] = response
        request[HEAD_SENT] = time.perf_counter()


def create_app(runtime: Runtime) -> web.Application:
    settings = runtime.settings
    middlewares: list[Middleware] = [lifecycle]
    guard = https_guard(settings.listener)
    if guard is not None:
        middlewares.insert(0, guard)
    app = web.Application(
        middlewares=middlewares,
        client_max_size=settings.listener.max_json_body_bytes,
    )
    app[RUNTIME] = runtime
    app.on_response_prepare.append(_add_request_id)
    openai.add_routes(app)
    audio.add_routes(app)
    tts.add_routes(app)
    health.add_routes(app)
    openapi.add_routes(app)
    dashboard.mount(app, runtime)
    return app

"""The OpenAI-compatible JSON endpoints and ``GET /v1/models`` on aiohttp (for connections
handed to it: :mod:`bastion.http.listener` serves them directly otherwise)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from bastion.core.catalog import Endpoint
from bastion.gateway.sink import Exchange
from bastion.http.api import JSON_ENDPOINTS, serve_json
from bastion.http.api import list_models as models_body
from bastion.http.body import read_capped
from bastion.http.keys import EXCHANGE, RUNTIME
from bastion.http.sink import AiohttpSink


def json_endpoint(endpoint: Endpoint) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        runtime = request.app[RUNTIME]
        exchange: Exchange = request[EXCHANGE]
        sink = AiohttpSink(request)
        limit = runtime.settings.listener.max_json_body_bytes

        async def read_body() -> bytes:
            return await read_capped(request, limit)

        await serve_json(
            runtime, endpoint, exchange, request.headers.get("Authorization"), read_body, sink
        )
        assert sink.response is not None
        return sink.response

    return handle


async def list_models(request: web.Request) -> web.Response:
    exchange: Exchange = request[EXCHANGE]
    body = await models_body(request.app[RUNTIME], exchange, request.headers.get("Authorization"))
    return web.Response(body=body, content_type="application/json", headers=exchange.headers)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/models", list_models)
    for endpoint in JSON_ENDPOINTS:
        app.router.add_post(endpoint.path, json_endpoint(endpoint))

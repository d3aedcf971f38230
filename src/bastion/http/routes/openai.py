"""The OpenAI-compatible JSON endpoints and ``GET /v1/models``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from bastion.core.catalog import Endpoint
from bastion.errors import ClientError
from bastion.gateway.sink import ClientGoneError, Exchange
from bastion.gateway.validation import parse_object
from bastion.http.body import read_capped
from bastion.http.keys import EXCHANGE, RUNTIME
from bastion.http.sink import AiohttpSink

JSON_ENDPOINTS = (
    Endpoint.CHAT,
    Endpoint.COMPLETIONS,
    Endpoint.RESPONSES,
    Endpoint.EMBEDDINGS,
    Endpoint.IMAGES,
)


def json_endpoint(endpoint: Endpoint) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        runtime = request.app[RUNTIME]
        exchange: Exchange = request[EXCHANGE]
        principal = await runtime.authenticator.authenticate(request.headers.get("Authorization"))
        exchange.info["account_id"] = principal.account.id
        exchange.info["key_id"] = principal.key.id
        exchange.info["endpoint"] = endpoint.value
        sink = AiohttpSink(request)
        try:
            body = await read_capped(request, runtime.settings.listener.max_json_body_bytes)
            payload = parse_object(body)
            # not contextlib.suppress: 0.7 µs a request against nothing for try/except
            try:  # noqa: SIM105
                await runtime.gateway.handle_json(
                    endpoint, exchange, principal, body, payload, sink
                )
            except ClientGoneError:
                pass
        except ClientError as error:
            if not _has_rate_state(error):
                await runtime.gateway.report_rate(exchange, principal)
            raise
        assert sink.response is not None
        return sink.response

    return handle


async def list_models(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    exchange: Exchange = request[EXCHANGE]
    principal = await runtime.authenticator.authenticate(request.headers.get("Authorization"))
    exchange.info["account_id"] = principal.account.id
    exchange.info["key_id"] = principal.key.id
    exchange.info["endpoint"] = "models"
    tier = runtime.gateway.tier_of(principal)
    # Counted against the rate limit like any request; never held for, never billed.
    ticket = await runtime.admission.admit(exchange.request_id, principal, tier, 0)
    await ticket.release()
    exchange.headers.update(ticket.headers)
    models = runtime.settings.catalog.visible_to(tier)
    body = {
        "object": "list",
        "data": [
            {"id": m.id, "object": "model", "created": m.created, "owned_by": m.owned_by}
            for m in models
        ],
    }
    return web.Response(
        body=orjson.dumps(body), content_type="application/json", headers=exchange.headers
    )


def _has_rate_state(error: ClientError) -> bool:
    """Refusals of the admission step (429, 402) already carry the rate-limit headers."""
    return "x-ratelimit-limit-requests" in error.headers()


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/models", list_models)
    for endpoint in JSON_ENDPOINTS:
        app.router.add_post(endpoint.path, json_endpoint(endpoint))

"""The OpenAI-compatible JSON endpoints and ``GET /v1/models``, whichever server parsed the
request: the listener's own connection handler or aiohttp."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson

from bastion.core.catalog import Endpoint
from bastion.errors import ClientError
from bastion.gateway.sink import ClientGoneError, Exchange, Sink
from bastion.gateway.validation import parse_object
from bastion.runtime import Runtime

JSON_ENDPOINTS = (
    Endpoint.CHAT,
    Endpoint.COMPLETIONS,
    Endpoint.RESPONSES,
    Endpoint.EMBEDDINGS,
    Endpoint.IMAGES,
)


async def serve_json(
    runtime: Runtime,
    endpoint: Endpoint,
    exchange: Exchange,
    authorization: str | None,
    read_body: Callable[[], Awaitable[bytes]],
    sink: Sink,
) -> None:
    """Authenticate, read the body (under its cap: ``read_body`` raises), and serve."""
    principal = await runtime.authenticator.authenticate(authorization)
    exchange.info["account_id"] = principal.account.id
    exchange.info["key_id"] = principal.key.id
    exchange.info["endpoint"] = endpoint.value
    try:
        body = await read_body()
        payload = parse_object(body)
        # not contextlib.suppress: 0.7 µs a request against nothing for try/except
        try:  # noqa: SIM105
            await runtime.gateway.handle_json(endpoint, exchange, principal, body, payload, sink)
        except ClientGoneError:
            pass
    except ClientError as error:
        if not _has_rate_state(error):
            await runtime.gateway.report_rate(exchange, principal)
        raise


async def list_models(runtime: Runtime, exchange: Exchange, authorization: str | None) -> bytes:
    """The models the key's tier may use, as the body of a 200."""
    principal = await runtime.authenticator.authenticate(authorization)
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
    return orjson.dumps(body)


def _has_rate_state(error: ClientError) -> bool:
    """Refusals of the admission step (429, 402) already carry the rate-limit headers."""
    return "x-ratelimit-limit-requests" in error.headers()

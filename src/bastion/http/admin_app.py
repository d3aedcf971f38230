"""The admin listener: ``/metrics`` (Prometheus text format), ``/healthz`` and ``/readyz``.

It is a separate listener (``[admin]``, off by default, on 127.0.0.1 when on) so that metrics,
which describe every tenant's traffic, never share the public API's address.  With
``admin.token`` set, every request needs ``Authorization: Bearer <token>`` (compared in
constant time); the token is mandatory when the listener is not on a loopback address.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from bastion.core.keys import bearer_token
from bastion.errors import InvalidApiKeyError
from bastion.http.envelope import error_response, from_http_exception
from bastion.http.keys import RUNTIME
from bastion.http.routes import health
from bastion.observability.metrics import CONTENT_TYPE
from bastion.runtime import Runtime

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def metrics(request: web.Request) -> web.Response:
    body = request.app[RUNTIME].metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def _guard(token: str | None) -> Middleware:
    expected = token.encode() if token else None

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if expected is not None:
            sent = bearer_token(request.headers.get("Authorization")) or ""
            if not hmac.compare_digest(sent.encode(), expected):
                return error_response(
                    InvalidApiKeyError("This admin listener needs its bearer token."),
                    {"WWW-Authenticate": "Bearer"},
                )
        try:
            return await handler(request)
        except web.HTTPException as exc:
            return error_response(from_http_exception(exc, request.path))

    return guard


def create_admin_app(runtime: Runtime) -> web.Application:
    token = runtime.settings.admin.token
    app = web.Application(
        middlewares=[_guard(token.value if token else None)], client_max_size=64 * 1024
    )
    app[RUNTIME] = runtime
    app.router.add_get("/metrics", metrics)
    health.add_routes(app)
    return app

"""Liveness and readiness."""

from __future__ import annotations

from aiohttp import web

from bastion.errors import StoreUnavailableError
from bastion.http.keys import RUNTIME


async def live(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    try:
        await runtime.db.changes.head()
    except StoreUnavailableError:
        return web.json_response({"status": "unavailable", "database": "down"}, status=503)
    return web.json_response({"status": "ready"})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", live)
    app.router.add_get("/readyz", ready)

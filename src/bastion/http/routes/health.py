"""Liveness and readiness.

- ``GET /healthz``: the process is alive and its event loop answers (no I/O).
- ``GET /readyz``: the process can serve metered requests: the store of record answers and,
  when configured, Redis answers a ping, each within ``READY_TIMEOUT_S``; not while draining
  after SIGTERM.  Otherwise 503 with which part is down, so a load balancer takes the replica
  out of rotation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from aiohttp import web

from bastion.errors import StoreUnavailableError
from bastion.http.keys import RUNTIME
from bastion.runtime import Runtime

READY_TIMEOUT_S = 2.0


async def live(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _check(probe: Awaitable[object]) -> str:
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            await probe
    except (StoreUnavailableError, TimeoutError):
        return "down"
    return "up"


async def readiness(runtime: Runtime) -> tuple[bool, dict[str, str]]:
    """Whether the process may take traffic, and the state of each part."""
    parts = {"database": await _check(runtime.db.changes.head())}
    if runtime.redis_admission is not None:
        parts["redis"] = await _check(runtime.redis_admission.ping())
    ready = all(state == "up" for state in parts.values())
    if runtime.draining:
        parts["gateway"] = "draining"
        ready = False
    return ready, parts


async def ready(request: web.Request) -> web.Response:
    ready_now, parts = await readiness(request.app[RUNTIME])
    body = {"status": "ready" if ready_now else "unavailable", **parts}
    return web.json_response(body, status=200 if ready_now else 503)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", live)
    app.router.add_get("/readyz", ready)

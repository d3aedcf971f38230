"""The dashboard as an aiohttp sub-application mounted at ``/dashboard`` on the public app."""

from __future__ import annotations

from aiohttp import web

from bastion.dashboard.keys import DASH_RUNTIME, SERVICES
from bastion.dashboard.middleware import dashboard_middleware, error_page
from bastion.dashboard.render import PREFIX, STATIC, redirect
from bastion.dashboard.routes import alerts, auth, keys, operator, usage
from bastion.runtime import Runtime


async def _not_found(request: web.Request) -> web.StreamResponse:
    return error_page(request, 404, "Page not found", "There is no page at this address.")


async def _to_dashboard(_request: web.Request) -> web.StreamResponse:
    return redirect(PREFIX + "/", status=302)


def create_dashboard(runtime: Runtime) -> web.Application:
    app = web.Application(middlewares=[dashboard_middleware])
    app[DASH_RUNTIME] = runtime
    app[SERVICES] = runtime.dashboard
    app.router.add_static("/static/", STATIC, name="static", show_index=False)
    app.router.add_get("", _to_dashboard)  # /dashboard without its slash
    for module in (auth, usage, keys, alerts, operator):
        module.add_routes(app)
    app.router.add_route("*", "/{tail:.*}", _not_found)
    return app


def mount(app: web.Application, runtime: Runtime) -> None:
    """Serve the dashboard under ``/dashboard/`` and send ``/`` there (when enabled)."""
    if not runtime.settings.dashboard.enabled:
        return
    app.add_subapp(PREFIX, create_dashboard(runtime))
    app.router.add_get("/", _to_dashboard)

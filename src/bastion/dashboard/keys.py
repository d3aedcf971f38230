"""Typed keys for what the dashboard's application and requests carry."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from bastion.storage.sql.sessions import SessionRecord

if TYPE_CHECKING:
    from bastion.admin.dashboard import DashboardServices
    from bastion.runtime import Runtime

SERVICES: web.AppKey[DashboardServices] = web.AppKey("dashboard_services")
DASH_RUNTIME: web.AppKey[Runtime] = web.AppKey("dashboard_runtime")
SESSION: web.RequestKey[SessionRecord | None] = web.RequestKey("dashboard_session")
SESSION_TOKEN: web.RequestKey[str | None] = web.RequestKey("dashboard_session_token")
CSRF: web.RequestKey[str] = web.RequestKey("dashboard_csrf")
NEW_PRESESSION: web.RequestKey[str] = web.RequestKey("dashboard_new_presession")
CLIENT_IP: web.RequestKey[str] = web.RequestKey("dashboard_client_ip")


def current_session(request: web.Request) -> SessionRecord | None:
    session: SessionRecord | None = request.get(SESSION, None)
    return session

"""The low-balance alert threshold of one's own account."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bastion.admin.forms import FormError
from bastion.dashboard.amounts import optional_limit
from bastion.dashboard.forms import read_form
from bastion.dashboard.guards import actor, session_of, signed_in
from bastion.dashboard.keys import SERVICES
from bastion.dashboard.render import PREFIX, redirect, render


def parse_threshold(text: str) -> int | None:
    """A low-balance threshold typed in USD; empty turns alerts off."""
    return optional_limit(text, "threshold", example="5 or 2.50", when_empty="to turn alerts off")


async def _context(request: web.Request) -> dict[str, Any]:
    services = request.app[SERVICES]
    account = await services.accounts.get(session_of(request).account.id)
    return {
        "acct": account,
        "alerts_enabled": services.settings.alerts.enabled,
        "channels": services.alerts.channels(),
    }


@signed_in()
async def alerts_page(request: web.Request) -> web.StreamResponse:
    return render(request, "alerts.html", **await _context(request))


@signed_in()
async def save_alerts(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    session = session_of(request)
    form = await read_form(request)
    try:
        threshold = parse_threshold(form.get("threshold", ""))
    except FormError as exc:
        return render(
            request,
            "alerts.html",
            400,
            errors=exc.errors,
            values={"threshold": form.get("threshold", "")},
            **await _context(request),
        )
    await services.alerts.set_threshold(session.account.id, threshold, actor=actor(session))
    return redirect(f"{PREFIX}/alerts?notice=alerts_saved")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/alerts", alerts_page)
    app.router.add_post("/alerts", save_alerts)

"""API keys: create (the secret is shown once), list, revoke with confirmation, spend caps.

Every change goes through :class:`bastion.admin.keys.KeyAdmin`, the same use case as the
CLI.  A customer may only touch the keys of their own account (another account's key is
"not found"); an operator may revoke any key.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bastion.admin.forms import FormError
from bastion.core.calendar import month_of, now_ms
from bastion.core.records import KeyRecord
from bastion.dashboard.amounts import optional_limit
from bastion.dashboard.forms import read_form
from bastion.dashboard.guards import actor, session_of, signed_in
from bastion.dashboard.keys import DASH_RUNTIME, SERVICES
from bastion.dashboard.render import PREFIX, redirect, render
from bastion.errors import OperatorError
from bastion.storage.sql.sessions import SessionRecord


async def _keys_context(request: web.Request, account_id: str) -> dict[str, Any]:
    services = request.app[SERVICES]
    runtime = request.app[DASH_RUNTIME]
    account = await services.accounts.get(account_id)
    tier = runtime.settings.tiers.get(account.tier) or runtime.settings.default_tier
    keys = await services.keys.list(account_id)
    spend = await services.usage.month_spend_by_key(account_id, month_of(now_ms()))
    return {
        "keys": sorted(keys, key=lambda k: (not k.is_active, -k.created_ms)),
        "spend": spend,
        "tier": tier,
        "cap_errors": {},
        "cap_values": {},
    }


@signed_in()
async def keys_page(request: web.Request) -> web.StreamResponse:
    session = session_of(request)
    return render(request, "keys.html", **await _keys_context(request, session.account.id))


@signed_in()
async def create_key(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    session = session_of(request)
    form = await read_form(request)
    label = form.get("label", "").strip()
    try:
        if not label:
            raise FormError.field("label", "Give the key a label, like prod-api-worker.")
        if len(label) > 200:
            raise FormError.field("label", "Use at most 200 characters.")
        created = await services.keys.create(session.account.id, label, actor=actor(session))
    except FormError as exc:
        errors = exc.errors
    except OperatorError as exc:
        errors = {"label": str(exc)}
    else:
        # Rendered, never redirected: the secret must not travel in a URL or be re-fetchable.
        return render(request, "key_created.html", key=created.record, secret=created.secret)
    context = await _keys_context(request, session.account.id)
    return render(request, "keys.html", 400, errors=errors, values={"label": label}, **context)


async def _own_key(request: web.Request, session: SessionRecord) -> KeyRecord | None:
    """The key named in the path if this session may manage it."""
    key = await request.app[SERVICES].db.keys.get(request.match_info["key_id"])
    if key is None:
        return None
    if key.account_id != session.account.id and session.account.role != "operator":
        return None  # someone else's key looks exactly like a key that does not exist
    return key


def _not_found(request: web.Request) -> web.Response:
    return render(
        request, "error.html", 404, title="Key not found", message="There is no such key."
    )


def _back(session: SessionRecord, key: KeyRecord) -> str:
    if key.account_id != session.account.id:
        return f"{PREFIX}/operator/accounts/{key.account_id}"
    return f"{PREFIX}/keys"


@signed_in()
async def revoke_page(request: web.Request) -> web.StreamResponse:
    session = session_of(request)
    key = await _own_key(request, session)
    if key is None:
        return _not_found(request)
    return render(request, "key_revoke.html", key=key, back=_back(session, key))


@signed_in()
async def revoke(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    session = session_of(request)
    key = await _own_key(request, session)
    if key is None:
        return _not_found(request)
    reason = "revoked in the dashboard"
    if key.account_id != session.account.id:
        reason = "revoked by an operator in the dashboard"
    await services.keys.revoke(key.id, actor=actor(session), reason=reason)
    return redirect(_back(session, key) + "?notice=key_revoked")


def parse_cap(text: str) -> int | None:
    """A monthly cap typed in USD; empty means no cap."""
    return optional_limit(text, "monthly_spend_cap", example="25 or 12.50", when_empty="for no cap")


@signed_in()
async def set_cap(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    session = session_of(request)
    key = await _own_key(request, session)
    if key is None or key.account_id != session.account.id:
        return _not_found(request)
    form = await read_form(request)
    try:
        cap = parse_cap(form.get("monthly_spend_cap", ""))
        await services.keys.set_limits(key.id, {"monthly_spend_cap": cap}, actor=actor(session))
        # this process at once (KeyAdmin.set_limits leaves it to the change feed, ≤ 0.25 s)
        request.app[DASH_RUNTIME].authenticator.drop_key(key.id)
    except FormError as exc:
        context = await _keys_context(request, session.account.id)
        context["cap_errors"] = {key.id: exc.errors["monthly_spend_cap"]}
        context["cap_values"] = {key.id: form.get("monthly_spend_cap", "")}
        return render(request, "keys.html", 400, **context)
    return redirect(f"{PREFIX}/keys?notice=cap_saved")


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/keys", keys_page)
    r.add_post("/keys", create_key)
    r.add_get("/keys/{key_id}/revoke", revoke_page)
    r.add_post("/keys/{key_id}/revoke", revoke)
    r.add_post("/keys/{key_id}/cap", set_cap)

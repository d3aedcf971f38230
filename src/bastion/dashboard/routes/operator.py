"""Operator pages: accounts (search, credit, tier, suspension), upstream health, platform
usage.  Every change is the CLI's use case (CreditAdmin, AccountAdmin, KeyAdmin) under the
operator's name in the audit log."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web

from bastion.admin.forms import FormError
from bastion.dashboard.amounts import typed_usd
from bastion.dashboard.forms import read_form
from bastion.dashboard.guards import actor, session_of, signed_in
from bastion.dashboard.keys import DASH_RUNTIME, SERVICES
from bastion.dashboard.render import PREFIX, redirect, render
from bastion.dashboard.routes.usage import charts, day_range, period
from bastion.errors import OperatorError
from bastion.storage.sql.usage import GroupBy

operator_only = signed_in(operator=True)
MAX_CREDIT_MICROS = 10**12  # $1,000,000 in one entry: beyond that it is a typo


@operator_only
async def accounts_page(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    query = request.query.get("q", "").strip()[:200]
    found = await services.db.accounts.search(query, 100)
    template = "operator/_accounts_table.html"
    if request.headers.get("HX-Request") != "true":
        template = "operator/accounts.html"
    return render(request, template, found=found, q=query)


async def _account_context(request: web.Request, account_id: str) -> dict[str, Any] | None:
    services = request.app[SERVICES]
    runtime = request.app[DASH_RUNTIME]
    account = await services.db.accounts.get(account_id)
    if account is None:
        return None
    holds = await runtime.admission_store.open_holds(account_id)
    return {
        "acct": account,
        "holds": holds,
        "keys": await services.keys.list(account_id),
        "entries": await services.db.ledger.entries(account_id, limit=20),
        "tiers": sorted(runtime.settings.tiers.values(), key=lambda t: t.requests_per_minute),
        "credit_errors": {},
        "tier_errors": {},
        "status_errors": {},
    }


def _no_account(request: web.Request) -> web.Response:
    return render(
        request, "error.html", 404, title="Account not found", message="There is no such account."
    )


@operator_only
async def account_page(request: web.Request) -> web.StreamResponse:
    context = await _account_context(request, request.match_info["account_id"])
    if context is None:
        return _no_account(request)
    return render(request, "operator/account.html", **context)


def _amount(text: str, *, signed: bool) -> int:
    try:
        micros = typed_usd(text, signed=signed)
    except ValueError:
        example = "25, 12.50 or -3" if signed else "25 or 12.50"
        raise FormError.field("amount", f"Enter an amount in USD, like {example}.") from None
    if micros == 0:
        raise FormError.field("amount", "The amount must not be zero.")
    if abs(micros) > MAX_CREDIT_MICROS:
        raise FormError.field("amount", "That amount is too large for one entry.")
    return micros


@operator_only
async def change_credit(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    session = session_of(request)
    account_id = request.match_info["account_id"]
    context = await _account_context(request, account_id)
    if context is None:
        return _no_account(request)
    form = await read_form(request)
    kind = form.get("kind", "")
    reason = form.get("reason", "").strip()
    try:
        if kind not in ("grant", "adjust"):
            raise FormError.field("kind", "Choose grant or adjustment.")
        amount = _amount(form.get("amount", ""), signed=kind == "adjust")
        if not reason:
            raise FormError.field("reason", "Say why (it is kept in the ledger and audit log).")
        if len(reason) > 500:
            raise FormError.field("reason", "Use at most 500 characters.")
        if kind == "grant":
            await services.credits.grant(account_id, amount, actor=actor(session), reason=reason)
        else:
            await services.credits.adjust(account_id, amount, actor=actor(session), reason=reason)
    except FormError as exc:
        context["credit_errors"] = exc.errors
    except OperatorError as exc:
        context["credit_errors"] = {"amount": str(exc)}
    else:
        return redirect(f"{PREFIX}/operator/accounts/{account_id}?notice=credit_done")
    values = {"kind": kind, "amount": form.get("amount", ""), "reason": reason}
    return render(request, "operator/account.html", 400, values=values, **context)


@operator_only
async def change_tier(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    session = session_of(request)
    account_id = request.match_info["account_id"]
    context = await _account_context(request, account_id)
    if context is None:
        return _no_account(request)
    form = await read_form(request)
    try:
        await services.accounts.set_tier(account_id, form.get("tier", ""), actor=actor(session))
    except OperatorError:
        context["tier_errors"] = {"tier": "Choose one of the tiers in the list."}
        return render(request, "operator/account.html", 400, **context)
    return redirect(f"{PREFIX}/operator/accounts/{account_id}?notice=tier_done")


@operator_only
async def change_status(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    runtime = request.app[DASH_RUNTIME]
    session = session_of(request)
    account_id = request.match_info["account_id"]
    context = await _account_context(request, account_id)
    if context is None:
        return _no_account(request)
    form = await read_form(request)
    status = {"suspend": "suspended", "resume": "active"}.get(form.get("action", ""))
    if status is None:
        context["status_errors"] = {"action": "Choose suspend or resume."}
    elif status == "suspended" and form.get("confirm") != "yes":
        context["status_errors"] = {
            "confirm": "Tick the box to confirm: every key of the account stops working."
        }
    elif account_id == session.account.id:
        context["status_errors"] = {"action": "You cannot suspend your own account."}
    else:
        await services.accounts.set_status(account_id, status, actor=actor(session))
        # this process at once; every other one through the change feed
        runtime.authenticator.drop_account(account_id)
        return redirect(f"{PREFIX}/operator/accounts/{account_id}?notice=status_done")
    return render(request, "operator/account.html", 400, **context)


def _shown_url(url: str) -> str:
    """An upstream address without any credentials or query it may carry."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@operator_only
async def upstreams_page(request: web.Request) -> web.StreamResponse:
    runtime = request.app[DASH_RUNTIME]
    settings = runtime.settings
    circuits = runtime.circuits.snapshot()
    upstreams = [
        {
            "name": u.name,
            "kind": u.kind,
            "url": _shown_url(u.base_url),
            "circuit_failures": u.circuit_failures,
            "circuit_open_s": u.circuit_open_s,
        }
        for u in sorted(settings.upstreams.values(), key=lambda u: u.name)
    ]
    deployments = []
    for model in settings.catalog.models:
        for d in model.deployments:
            name = f"{d.upstream}/{d.upstream_model}"
            deployments.append(
                {
                    "model": model.id,
                    "category": model.category,
                    "upstream": d.upstream,
                    "upstream_model": d.upstream_model,
                    "weight": d.weight,
                    "circuit": circuits.get(name),
                }
            )
    return render(request, "operator/upstreams.html", upstreams=upstreams, deployments=deployments)


@operator_only
async def platform_page(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    by: GroupBy = "account" if request.query.get("by") == "account" else "model"
    days = period(request)
    context = await charts(request, None, days, by)
    totals = await services.usage.platform(day_range(days)[0])
    if request.headers.get("HX-Request") == "true":
        return render(request, "_usage_charts.html", **context)
    recent = await services.usage.recent(account_id=None, limit=50)
    return render(
        request,
        "operator/usage.html",
        totals=totals,
        recent=recent,
        **context,
    )


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/operator/accounts", accounts_page)
    r.add_get("/operator/accounts/{account_id}", account_page)
    r.add_post("/operator/accounts/{account_id}/credit", change_credit)
    r.add_post("/operator/accounts/{account_id}/tier", change_tier)
    r.add_post("/operator/accounts/{account_id}/status", change_status)
    r.add_get("/operator/upstreams", upstreams_page)
    r.add_get("/operator/usage", platform_page)

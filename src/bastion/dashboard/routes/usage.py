"""The overview, usage charts, recent requests and their CSV export."""

from __future__ import annotations

import csv
import io
from typing import Any

from aiohttp import web

from bastion.core.calendar import day_of, now_ms
from bastion.core.money import usd_text
from bastion.dashboard.charts import Chart, build_series, svg
from bastion.dashboard.guards import session_of, signed_in
from bastion.dashboard.keys import DASH_RUNTIME, SERVICES
from bastion.dashboard.render import PREFIX, day_label, iso, money, render
from bastion.storage.sql.usage import GroupBy

DAY_MS = 86_400_000
PERIODS = (7, 30, 90)
CSV_ROWS = 50_000


def period(request: web.Request) -> int:
    try:
        days = int(request.query.get("days", "30"))
    except ValueError:
        return 30
    return days if days in PERIODS else 30


def day_range(days: int) -> list[int]:
    now = now_ms()
    return [day_of(now - DAY_MS * i) for i in range(days - 1, -1, -1)]


async def charts(
    request: web.Request, account_id: str | None, days: int, by: GroupBy
) -> dict[str, Any]:
    """The spend and requests charts of one account (or of the platform) and their numbers."""
    services = request.app[SERVICES]
    day_list = day_range(days)
    rows = await services.usage.daily(account_id=account_id, day_from=day_list[0], by=by)
    names: dict[str, str] = {}
    if by == "key":
        names = await services.usage.key_labels(account_id)
    elif by == "account":
        names = await services.usage.account_emails(sorted({r.group for r in rows}))
    spend = Chart(
        id=f"spend-{by}",
        title=f"Spend per day by {by}, last {days} days",
        days=tuple(day_list),
        series=build_series(rows, day_list, lambda r: r.cost, names),
        fmt=money,
    )
    requests = Chart(
        id=f"requests-{by}",
        title=f"Requests per day by {by}, last {days} days",
        days=tuple(day_list),
        series=build_series(rows, day_list, lambda r: r.requests, names),
        fmt=lambda v: f"{v:,}",
    )
    return {
        "spend_chart": spend,
        "spend_svg": svg(spend, day_label),
        "requests_chart": requests,
        "requests_svg": svg(requests, day_label),
        "by": by,
        "days": days,
        "periods": PERIODS,
        "groups": ("model", "account") if account_id is None else ("model", "key"),
        "base": f"{PREFIX}/operator/usage" if account_id is None else f"{PREFIX}/usage",
    }


@signed_in()
async def overview(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    runtime = request.app[DASH_RUNTIME]
    session = session_of(request)
    account = await services.accounts.get(session.account.id)
    holds = await runtime.admission_store.open_holds(account.id)
    tier = runtime.settings.tiers.get(account.tier) or runtime.settings.default_tier
    keys = await services.keys.list(account.id)
    recent = await services.usage.recent(account_id=account.id, limit=5)
    context = await charts(request, account.id, 14, "model")
    return render(
        request,
        "overview.html",
        acct=account,
        holds=holds,
        available=account.balance - holds,
        tier=tier,
        active_keys=sum(1 for k in keys if k.is_active),
        recent=recent,
        **context,
    )


@signed_in()
async def usage_page(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    session = session_of(request)
    by: GroupBy = "key" if request.query.get("by") == "key" else "model"
    days = period(request)
    context = await charts(request, session.account.id, days, by)
    if request.headers.get("HX-Request") == "true":
        return render(request, "_usage_charts.html", **context)
    recent = await services.usage.recent(account_id=session.account.id, limit=50)
    return render(request, "usage.html", recent=recent, **context)


def _cell(text: object) -> str:
    """Spreadsheet-safe: a value that starts like a formula is quoted (CSV injection)."""
    value = "" if text is None else str(text)
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


@signed_in()
async def usage_csv(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    session = session_of(request)
    days = period(request)
    rows = await services.usage.recent(
        account_id=session.account.id, limit=CSV_ROWS, since_ms=now_ms() - DAY_MS * days
    )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(
        [
            "time_utc",
            "request_id",
            "key_label",
            "key_id",
            "model",
            "endpoint",
            "status",
            "input_tokens",
            "output_tokens",
            "images",
            "audio_seconds",
            "characters",
            "cost_usd",
        ]
    )
    for row in reversed(rows):
        usage = row["usage"] or {}
        writer.writerow(
            [
                iso(row["created_ms"]),
                row["request_id"],
                _cell(row["key_label"]),
                row["key_id"],
                _cell(row["model"]),
                row["endpoint"],
                row["status"],
                usage.get("input_tokens", 0),
                usage.get("output_tokens", 0),
                usage.get("images", 0),
                usage.get("audio_ms", 0) / 1000,
                usage.get("characters", 0),
                usd_text(int(row["cost"])),
            ]
        )
    return web.Response(
        text=out.getvalue(),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="bastion-usage-{days}d.csv"'},
    )


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/", overview)
    r.add_get("/usage", usage_page)
    r.add_get("/usage.csv", usage_csv)

"""Usage read models for the dashboard: per-day series, recent requests, platform totals.

Spend comes from the ledger (charges net of refunds, exactly what balances moved by);
request counts come from the request log (every request, failed ones included).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.storage.sql.engine import translated_errors
from bastion.storage.sql.tables import accounts, api_keys, ledger, request_log

GroupBy = Literal["model", "key", "account"]


@dataclass(frozen=True, slots=True)
class DailyUsage:
    day: int
    group: str
    requests: int
    cost: int


def _ledger_group(by: GroupBy) -> Any:
    return {"model": ledger.c.model, "key": ledger.c.key_id, "account": ledger.c.account_id}[by]


def _log_group(by: GroupBy) -> Any:
    return {
        "model": request_log.c.model,
        "key": request_log.c.key_id,
        "account": request_log.c.account_id,
    }[by]


class SqlUsage:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def daily(
        self, *, account_id: str | None, day_from: int, by: GroupBy
    ) -> list[DailyUsage]:
        spend_where: list[ColumnElement[bool]] = [
            ledger.c.kind.in_(("charge", "refund")),
            ledger.c.day >= day_from,
        ]
        log_where: list[ColumnElement[bool]] = [request_log.c.day >= day_from]
        if account_id is not None:
            spend_where.append(ledger.c.account_id == account_id)
            log_where.append(request_log.c.account_id == account_id)
        spend_group = _ledger_group(by)
        log_group = _log_group(by)
        spend_query = (
            select(ledger.c.day, spend_group.label("grp"), func.sum(-ledger.c.amount).label("cost"))
            .where(*spend_where)
            .group_by(ledger.c.day, spend_group)
        )
        log_query = (
            select(request_log.c.day, log_group.label("grp"), func.count().label("requests"))
            .where(*log_where)
            .group_by(request_log.c.day, log_group)
        )
        async with translated_errors(), self._engine.connect() as conn:
            spend_rows = (await conn.execute(spend_query)).all()
            log_rows = (await conn.execute(log_query)).all()
        merged: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0, 0])
        for r in log_rows:
            merged[(int(r.day), r.grp or "(none)")][0] += int(r.requests)
        for r in spend_rows:
            merged[(int(r.day), r.grp or "(none)")][1] += int(r.cost or 0)
        return [
            DailyUsage(day=day, group=group, requests=values[0], cost=values[1])
            for (day, group), values in sorted(merged.items())
        ]

    async def recent(
        self,
        *,
        account_id: str | None,
        limit: int = 50,
        since_ms: int | None = None,
    ) -> list[dict[str, Any]]:
        """Newest first, with each key's label."""
        query = (
            select(
                request_log.c.request_id,
                request_log.c.account_id,
                request_log.c.key_id,
                api_keys.c.label.label("key_label"),
                request_log.c.model,
                request_log.c.endpoint,
                request_log.c.status,
                request_log.c.usage,
                request_log.c.cost,
                request_log.c.duration_ms,
                request_log.c.created_ms,
            )
            .outerjoin(api_keys, api_keys.c.id == request_log.c.key_id)
            .order_by(request_log.c.created_ms.desc(), request_log.c.id.desc())
            .limit(limit)
        )
        if account_id is not None:
            query = query.where(request_log.c.account_id == account_id)
        if since_ms is not None:
            query = query.where(request_log.c.created_ms >= since_ms)
        async with translated_errors(), self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        out = []
        for r in rows:
            item = dict(r._mapping)
            item["usage"] = json.loads(item["usage"]) if item["usage"] else None
            out.append(item)
        return out

    async def key_labels(self, account_id: str | None = None) -> dict[str, str]:
        query = select(api_keys.c.id, api_keys.c.label)
        if account_id is not None:
            query = query.where(api_keys.c.account_id == account_id)
        async with translated_errors(), self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {r.id: r.label for r in rows}

    async def account_emails(self, account_ids: list[str]) -> dict[str, str]:
        if not account_ids:
            return {}
        async with translated_errors(), self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(accounts.c.id, accounts.c.email).where(accounts.c.id.in_(account_ids))
                )
            ).all()
        return {r.id: r.email for r in rows}

    async def month_spend_by_key(self, account_id: str, month: int) -> dict[str, int]:
        """Each key's net spend in a month (what its monthly cap is compared with)."""
        query = (
            select(ledger.c.key_id, func.sum(-ledger.c.amount).label("spent"))
            .where(
                ledger.c.account_id == account_id,
                ledger.c.month == month,
                ledger.c.kind.in_(("charge", "refund")),
            )
            .group_by(ledger.c.key_id)
        )
        async with translated_errors(), self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {r.key_id: int(r.spent or 0) for r in rows if r.key_id}

    async def platform(self, day_from: int) -> dict[str, int]:
        """Totals over every account since a day: requests, failed requests, spend, accounts."""
        async with translated_errors(), self._engine.connect() as conn:
            requests, failed = (
                await conn.execute(
                    select(
                        func.count(),
                        func.coalesce(func.sum(case((request_log.c.status >= 400, 1), else_=0)), 0),
                    ).where(request_log.c.day >= day_from)
                )
            ).one()
            spend = (
                await conn.execute(
                    select(func.coalesce(func.sum(-ledger.c.amount), 0)).where(
                        ledger.c.kind.in_(("charge", "refund")), ledger.c.day >= day_from
                    )
                )
            ).scalar_one()
            total_accounts = (
                await conn.execute(select(func.count()).select_from(accounts))
            ).scalar_one()
        return {
            "requests": int(requests),
            "failed": int(failed),
            "spend": int(spend),
            "accounts": int(total_accounts),
        }

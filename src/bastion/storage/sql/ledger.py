"""The append-only ledger: grants, charges, adjustments and refunds in integer micro-USD.

``accounts.balance`` is a materialised sum of the account's ledger entries, updated in the same
transaction as every entry; :meth:`SqlLedger.verify` re-derives it from the entries.  Entries
are never updated or deleted: a correction is a new entry.  ``accounts.version`` counts the
entries, so a cache seeded at version *v* knows which later charges it has not seen.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bastion.core.calendar import day_of, month_of, now_ms
from bastion.errors import OperatorError
from bastion.storage.sql.changes import record_change
from bastion.storage.sql.engine import translated_errors
from bastion.storage.sql.tables import accounts, api_keys, ledger

ENTRY_KINDS = ("grant", "charge", "adjustment", "refund")


@dataclass(frozen=True, slots=True)
class Funds:
    """An account's posted balance and the ledger version it reflects."""

    balance: int
    version: int


@dataclass(frozen=True, slots=True)
class Mismatch:
    account_id: str
    stored_balance: int
    ledger_sum: int
    stored_version: int
    entries: int


async def post_entry(
    conn: AsyncConnection,
    *,
    account_id: str,
    kind: str,
    amount: int,
    actor: str | None = None,
    reason: str | None = None,
    request_id: str | None = None,
    key_id: str | None = None,
    model: str | None = None,
    endpoint: str | None = None,
    usage: str | None = None,
) -> Funds:
    """Append one entry and move the balance, inside the caller's transaction."""
    if kind not in ENTRY_KINDS:
        raise ValueError(f"unknown ledger entry kind {kind!r}")
    created = now_ms()
    result = await conn.execute(
        update(accounts)
        .where(accounts.c.id == account_id)
        .values(balance=accounts.c.balance + amount, version=accounts.c.version + 1)
        .returning(accounts.c.balance, accounts.c.version)
    )
    row = result.first()
    if row is None:
        raise OperatorError(f"no account {account_id}")
    await conn.execute(
        ledger.insert().values(
            account_id=account_id,
            key_id=key_id,
            request_id=request_id,
            kind=kind,
            amount=amount,
            model=model,
            endpoint=endpoint,
            usage=usage,
            actor=actor,
            reason=reason,
            created_ms=created,
            day=day_of(created),
            month=month_of(created),
        )
    )
    await record_change(conn, "balance", account_id=account_id)
    return Funds(balance=int(row.balance), version=int(row.version))


class SqlLedger:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def post(self, **entry: Any) -> Funds:
        async with translated_errors():
            try:
                async with self._engine.begin() as conn:
                    return await post_entry(conn, **entry)
            except IntegrityError:
                raise OperatorError(
                    f"a {entry.get('kind')} for request {entry.get('request_id')} already exists"
                ) from None

    async def refund(self, request_id: str, actor: str, reason: str) -> Funds:
        """Give back one charge in full; a second refund of the same request is refused."""
        async with translated_errors():
            try:
                async with self._engine.begin() as conn:
                    row = (
                        await conn.execute(
                            select(ledger).where(
                                ledger.c.request_id == request_id, ledger.c.kind == "charge"
                            )
                        )
                    ).first()
                    if row is None:
                        raise OperatorError(f"no charge for request {request_id}")
                    return await post_entry(
                        conn,
                        account_id=row.account_id,
                        kind="refund",
                        amount=-int(row.amount),
                        actor=actor,
                        reason=reason,
                        request_id=request_id,
                        key_id=row.key_id,
                        model=row.model,
                        endpoint=row.endpoint,
                    )
            except IntegrityError:
                raise OperatorError(f"request {request_id} was already refunded") from None

    async def funds(self, account_id: str) -> Funds | None:
        async with translated_errors(), self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(accounts.c.balance, accounts.c.version).where(
                        accounts.c.id == account_id
                    )
                )
            ).first()
        return Funds(balance=int(row.balance), version=int(row.version)) if row else None

    async def key_month_spend(self, key_id: str, month: int) -> tuple[int, int]:
        """(spent this month by the key in micro-USD, account version of that snapshot)."""
        async with translated_errors(), self._engine.begin() as conn:
            version_row = (
                await conn.execute(
                    select(accounts.c.version)
                    .join(api_keys, api_keys.c.account_id == accounts.c.id)
                    .where(api_keys.c.id == key_id)
                )
            ).first()
            spent = (
                await conn.execute(
                    select(func.coalesce(func.sum(-ledger.c.amount), 0)).where(
                        ledger.c.key_id == key_id,
                        ledger.c.month == month,
                        ledger.c.kind.in_(("charge", "refund")),
                    )
                )
            ).scalar_one()
        return int(spent), int(version_row[0]) if version_row else 0

    async def entries(
        self, account_id: str, *, limit: int = 100, kinds: tuple[str, ...] = ENTRY_KINDS
    ) -> list[dict[str, Any]]:
        query = (
            select(ledger)
            .where(ledger.c.account_id == account_id, ledger.c.kind.in_(kinds))
            .order_by(ledger.c.id.desc())
            .limit(limit)
        )
        async with translated_errors(), self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        out = []
        for r in rows:
            item = dict(r._mapping)
            item["usage"] = json.loads(item["usage"]) if item["usage"] else None
            out.append(item)
        return out

    async def charge_for(self, request_id: str) -> dict[str, Any] | None:
        async with translated_errors(), self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(ledger).where(
                        ledger.c.request_id == request_id, ledger.c.kind == "charge"
                    )
                )
            ).first()
        return dict(row._mapping) if row else None

    async def statement(
        self,
        *,
        account_id: str | None = None,
        key_id: str | None = None,
        day_from: int | None = None,
        day_to: int | None = None,
    ) -> list[dict[str, Any]]:
        """Net charges grouped by day and model (refunds subtract), oldest first."""
        conditions: list[ColumnElement[bool]] = [ledger.c.kind.in_(("charge", "refund"))]
        if account_id:
            conditions.append(ledger.c.account_id == account_id)
        if key_id:
            conditions.append(ledger.c.key_id == key_id)
        if day_from:
            conditions.append(ledger.c.day >= day_from)
        if day_to:
            conditions.append(ledger.c.day <= day_to)
        charges = func.sum(case((ledger.c.kind == "charge", 1), else_=0))
        query = (
            select(
                ledger.c.day,
                ledger.c.model,
                charges.label("requests"),
                func.sum(-ledger.c.amount).label("cost"),
            )
            .where(and_(*conditions))
            .group_by(ledger.c.day, ledger.c.model)
            .order_by(ledger.c.day, ledger.c.model)
        )
        async with translated_errors(), self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            {"day": r.day, "model": r.model, "requests": int(r.requests), "cost": int(r.cost)}
            for r in rows
        ]

    async def verify(self) -> tuple[int, list[Mismatch]]:
        """Re-derive every balance from the ledger: (accounts checked, mismatches)."""
        sums = (
            select(
                ledger.c.account_id,
                func.sum(ledger.c.amount).label("total"),
                func.count().label("entries"),
            )
            .group_by(ledger.c.account_id)
            .subquery()
        )
        query = select(
            accounts.c.id,
            accounts.c.balance,
            accounts.c.version,
            func.coalesce(sums.c.total, 0).label("total"),
            func.coalesce(sums.c.entries, 0).label("entries"),
        ).outerjoin(sums, sums.c.account_id == accounts.c.id)
        async with translated_errors(), self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
            duplicate_charges = (
                await conn.execute(
                    select(func.count())
                    .select_from(ledger)
                    .where(ledger.c.kind == "charge", ledger.c.request_id.is_(None))
                )
            ).scalar_one()
        mismatches = [
            Mismatch(
                account_id=r.id,
                stored_balance=int(r.balance),
                ledger_sum=int(r.total),
                stored_version=int(r.version),
                entries=int(r.entries),
            )
            for r in rows
            if int(r.balance) != int(r.total) or int(r.version) != int(r.entries)
        ]
        if duplicate_charges:
            mismatches.append(Mismatch("(charges without request id)", 0, 0, 0, duplicate_charges))
        return len(rows), mismatches

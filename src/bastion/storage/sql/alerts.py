"""Low-balance alert state: which accounts were already told that their balance is low.

A row is written (claimed) before the alert is sent, with a primary key on the account, so
that of several replicas running the alert task only one sends.  ``channels`` lists the
channels that delivered; a failed channel leaves the row in ``retry`` and the next round
sends only what is missing.  The row stays while the balance is below the threshold
("alerted since") and goes when it is back above or the threshold changes, which re-arms
the alert.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.core.records import AccountRecord
from bastion.storage.sql.accounts import account_from_row
from bastion.storage.sql.engine import translated_errors
from bastion.storage.sql.tables import accounts, low_balance_alerts
from bastion.storage.sql.upsert import insert_for

SENDING = "sending"
SENT = "sent"
RETRY = "retry"


@dataclass(frozen=True, slots=True)
class DueAlert:
    account: AccountRecord
    delivered: frozenset[str]
    """Channels that already delivered this alert (a retry sends only the others)."""
    retry: bool


class SqlBalanceAlerts:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def due(self, limit: int = 100) -> list[DueAlert]:
        """Active accounts below their threshold not alerted since (or whose alert failed)."""
        query = (
            select(
                *[c for c in accounts.c if c.name != "password_hash"],
                low_balance_alerts.c.state.label("alert_state"),
                low_balance_alerts.c.channels.label("alert_channels"),
            )
            .outerjoin(low_balance_alerts, low_balance_alerts.c.account_id == accounts.c.id)
            .where(
                accounts.c.low_balance_threshold.is_not(None),
                accounts.c.balance < accounts.c.low_balance_threshold,
                accounts.c.status == "active",
                or_(
                    low_balance_alerts.c.account_id.is_(None),
                    low_balance_alerts.c.state == RETRY,
                ),
            )
            .order_by(accounts.c.id)
            .limit(limit)
        )
        async with translated_errors(), self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            DueAlert(
                account=account_from_row(r),
                delivered=frozenset(c for c in (r.alert_channels or "").split(",") if c),
                retry=r.alert_state == RETRY,
            )
            for r in rows
        ]

    async def claim(self, due: DueAlert, now_ms: int) -> bool:
        """True for the one process that may send this account's alert."""
        account = due.account
        async with translated_errors(), self._engine.begin() as conn:
            if due.retry:
                result = await conn.execute(
                    update(low_balance_alerts)
                    .where(
                        low_balance_alerts.c.account_id == account.id,
                        low_balance_alerts.c.state == RETRY,
                    )
                    .values(state=SENDING, claimed_ms=now_ms, balance=account.balance)
                )
            else:
                result = await conn.execute(
                    insert_for(conn, low_balance_alerts)
                    .values(
                        account_id=account.id,
                        threshold=account.low_balance_threshold or 0,
                        balance=account.balance,
                        state=SENDING,
                        claimed_ms=now_ms,
                        channels="",
                    )
                    .on_conflict_do_nothing(index_elements=[low_balance_alerts.c.account_id])
                )
        return result.rowcount == 1

    async def delivered(self, account_id: str, channels: list[str]) -> None:
        async with translated_errors(), self._engine.begin() as conn:
            await conn.execute(
                update(low_balance_alerts)
                .where(low_balance_alerts.c.account_id == account_id)
                .values(channels=",".join(channels))
            )

    async def sent(self, account_id: str, now_ms: int) -> None:
        async with translated_errors(), self._engine.begin() as conn:
            await conn.execute(
                update(low_balance_alerts)
                .where(low_balance_alerts.c.account_id == account_id)
                .values(state=SENT, sent_ms=now_ms)
            )

    async def failed(self, account_id: str) -> None:
        """A channel failed: the next round sends what is missing."""
        async with translated_errors(), self._engine.begin() as conn:
            await conn.execute(
                update(low_balance_alerts)
                .where(low_balance_alerts.c.account_id == account_id)
                .values(state=RETRY)
            )

    async def clear(self, account_id: str) -> None:
        async with translated_errors(), self._engine.begin() as conn:
            await conn.execute(
                delete(low_balance_alerts).where(low_balance_alerts.c.account_id == account_id)
            )

    async def rearm(self, stale_before_ms: int) -> int:
        """Forget alerts of accounts back above their threshold (or without one), and claims
        that a process died holding."""
        recovered = select(accounts.c.id).where(
            or_(
                accounts.c.low_balance_threshold.is_(None),
                accounts.c.balance >= accounts.c.low_balance_threshold,
            )
        )
        async with translated_errors(), self._engine.begin() as conn:
            result = await conn.execute(
                delete(low_balance_alerts).where(low_balance_alerts.c.account_id.in_(recovered))
            )
            # a process that died while sending: let another one finish the job
            await conn.execute(
                update(low_balance_alerts)
                .where(
                    low_balance_alerts.c.state == SENDING,
                    low_balance_alerts.c.claimed_ms < stale_before_ms,
                )
                .values(state=RETRY)
            )
        return int(result.rowcount)

    async def state(self, account_id: str) -> dict[str, object] | None:
        async with translated_errors(), self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(low_balance_alerts).where(low_balance_alerts.c.account_id == account_id)
                )
            ).first()
        return dict(row._mapping) if row else None

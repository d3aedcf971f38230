"""Low-balance alert state: which accounts were already told that their balance is low.

A row is written (claimed) before the alert is sent, with a primary key on the account, so
that of several replicas running the alert task only one sends.  The row stays while the
balance is below the threshold ("alerted since") and goes when it is back above or the
threshold changes, which re-arms the alert.
"""

from __future__ import annotations

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.core.records import AccountRecord
from bastion.storage.sql.accounts import account_from_row
from bastion.storage.sql.engine import translated_errors
from bastion.storage.sql.tables import accounts, low_balance_alerts
from bastion.storage.sql.upsert import insert_for

SENDING = "sending"
SENT = "sent"


class SqlBalanceAlerts:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def due(self, limit: int = 100) -> list[AccountRecord]:
        """Active accounts below their threshold that have not been alerted since."""
        query = (
            select(*[c for c in accounts.c if c.name != "password_hash"])
            .outerjoin(low_balance_alerts, low_balance_alerts.c.account_id == accounts.c.id)
            .where(
                accounts.c.low_balance_threshold.is_not(None),
                accounts.c.balance < accounts.c.low_balance_threshold,
                accounts.c.status == "active",
                low_balance_alerts.c.account_id.is_(None),
            )
            .order_by(accounts.c.id)
            .limit(limit)
        )
        async with translated_errors(), self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [account_from_row(r) for r in rows]

    async def claim(self, account: AccountRecord, now_ms: int) -> bool:
        """True for the one process that may send this account's alert."""
        async with translated_errors(), self._engine.begin() as conn:
            result = await conn.execute(
                insert_for(conn, low_balance_alerts)
                .values(
                    account_id=account.id,
                    threshold=account.low_balance_threshold or 0,
                    balance=account.balance,
                    state=SENDING,
                    claimed_ms=now_ms,
                )
                .on_conflict_do_nothing(index_elements=[low_balance_alerts.c.account_id])
            )
        return result.rowcount == 1

    async def sent(self, account_id: str, now_ms: int, channels: list[str]) -> None:
        async with translated_errors(), self._engine.begin() as conn:
            await conn.execute(
                update(low_balance_alerts)
                .where(low_balance_alerts.c.account_id == account_id)
                .values(state=SENT, sent_ms=now_ms, channels=",".join(channels))
            )

    async def release(self, account_id: str) -> None:
        """Sending failed: drop the claim so that a later round tries again."""
        await self.clear(account_id)

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
                delete(low_balance_alerts).where(
                    or_(
                        low_balance_alerts.c.account_id.in_(recovered),
                        (low_balance_alerts.c.state == SENDING)
                        & (low_balance_alerts.c.claimed_ms < stale_before_ms),
                    )
                )
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

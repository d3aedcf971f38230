"""The change feed: a table every process polls to learn what other processes changed."""

from __future__ import annotations

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bastion.core.calendar import now_ms
from bastion.core.records import Change
from bastion.storage.sql.engine import translated_errors
from bastion.storage.sql.tables import changes


async def record_change(
    conn: AsyncConnection, kind: str, *, account_id: str | None = None, key_id: str | None = None
) -> None:
    """Append a change inside the caller's transaction, so it is seen iff the change commits."""
    await conn.execute(
        insert(changes).values(kind=kind, account_id=account_id, key_id=key_id, created_ms=now_ms())
    )


class SqlChangeFeed:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def head(self) -> int:
        async with translated_errors(), self._engine.connect() as conn:
            row = (
                await conn.execute(select(changes.c.seq).order_by(changes.c.seq.desc()).limit(1))
            ).first()
        return int(row[0]) if row else 0

    async def since(self, seq: int, limit: int = 1000) -> list[Change]:
        async with translated_errors(), self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(changes).where(changes.c.seq > seq).order_by(changes.c.seq).limit(limit)
                )
            ).all()
        return [
            Change(seq=int(r.seq), kind=r.kind, account_id=r.account_id, key_id=r.key_id)
            for r in rows
        ]

    async def prune(self, older_than_ms: int) -> None:
        async with translated_errors(), self._engine.begin() as conn:
            await conn.execute(delete(changes).where(changes.c.created_ms < older_than_ms))

"""Fixed-window counters in the store of record, so every replica counts the same attempts.

One atomic upsert per hit: a window that has run out starts again at 1, otherwise the count
goes up by one; the caller compares the count with its limit.  Refused attempts count too,
so hammering a locked key does not shorten the wait.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import case, delete
from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.storage.sql.engine import translated_errors
from bastion.storage.sql.tables import throttles
from bastion.storage.sql.upsert import insert_for


@dataclass(frozen=True, slots=True)
class Hit:
    hits: int
    """Attempts in the current window, this one included."""
    window_end_ms: int


class SqlThrottles:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def hit(self, key: str, window_ms: int, now_ms: int) -> Hit:
        expired = throttles.c.window_start_ms <= now_ms - window_ms
        async with translated_errors(), self._engine.begin() as conn:
            statement = insert_for(conn, throttles).values(key=key, window_start_ms=now_ms, hits=1)
            statement = statement.on_conflict_do_update(
                index_elements=[throttles.c.key],
                set_={
                    "hits": case((expired, 1), else_=throttles.c.hits + 1),
                    "window_start_ms": case((expired, now_ms), else_=throttles.c.window_start_ms),
                },
            ).returning(throttles.c.hits, throttles.c.window_start_ms)
            row = (await conn.execute(statement)).one()
        return Hit(hits=int(row.hits), window_end_ms=int(row.window_start_ms) + window_ms)

    async def clear(self, key: str) -> None:
        async with translated_errors(), self._engine.begin() as conn:
            await conn.execute(delete(throttles).where(throttles.c.key == key))

    async def prune(self, older_than_ms: int) -> None:
        async with translated_errors(), self._engine.begin() as conn:
            await conn.execute(delete(throttles).where(throttles.c.window_start_ms < older_than_ms))

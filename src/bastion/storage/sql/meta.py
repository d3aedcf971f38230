"""Named facts in the store of record (``meta`` table)."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.core.calendar import now_ms
from bastion.storage.sql.engine import translated_errors
from bastion.storage.sql.tables import meta


class SqlMeta:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def get(self, name: str) -> str | None:
        async with translated_errors(), self._engine.connect() as conn:
            row = (await conn.execute(select(meta.c.value).where(meta.c.name == name))).first()
        return str(row[0]) if row else None

    async def set(self, name: str, value: str) -> None:
        async with translated_errors(), self._engine.begin() as conn:
            changed = await conn.execute(
                update(meta).where(meta.c.name == name).values(value=value, updated_ms=now_ms())
            )
            if changed.rowcount == 0:
                try:
                    async with conn.begin_nested():
                        await conn.execute(
                            meta.insert().values(name=name, value=value, updated_ms=now_ms())
                        )
                except IntegrityError:
                    await conn.execute(update(meta).where(meta.c.name == name).values(value=value))

"""Keys the server makes once and every replica shares (read through, created on first use)."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.core.calendar import now_ms
from bastion.storage.sql.engine import translated_errors
from bastion.storage.sql.tables import server_keys
from bastion.storage.sql.upsert import insert_for


class SqlServerKeys:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def get_or_create(self, name: str, size: int = 32) -> bytes:
        """The key called ``name``; the first caller (of any replica) creates it."""
        async with translated_errors(), self._engine.begin() as conn:
            await conn.execute(
                insert_for(conn, server_keys)
                .values(name=name, value=secrets.token_bytes(size), created_ms=now_ms())
                .on_conflict_do_nothing(index_elements=[server_keys.c.name])
            )
            value = (
                await conn.execute(select(server_keys.c.value).where(server_keys.c.name == name))
            ).scalar_one()
        return bytes(value)

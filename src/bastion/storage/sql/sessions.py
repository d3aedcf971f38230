"""Dashboard sessions: the digest of each session id, its account and its expiry times."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.core.records import AccountRecord
from bastion.storage.sql.accounts import account_from_row
from bastion.storage.sql.engine import translated_errors
from bastion.storage.sql.tables import accounts, dashboard_sessions


@dataclass(frozen=True, slots=True)
class SessionRecord:
    digest: bytes
    account: AccountRecord
    created_ms: int
    last_seen_ms: int
    expires_ms: int


class SqlSessions:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(
        self,
        *,
        digest: bytes,
        account_id: str,
        now_ms: int,
        expires_ms: int,
        ip: str | None,
        user_agent: str | None,
        replaces: bytes | None = None,
    ) -> None:
        """Store a new session; the one it ``replaces`` (rotation) ends in the same commit."""
        async with translated_errors(), self._engine.begin() as conn:
            if replaces is not None:
                await conn.execute(
                    delete(dashboard_sessions).where(dashboard_sessions.c.digest == replaces)
                )
            await conn.execute(
                dashboard_sessions.insert().values(
                    digest=digest,
                    account_id=account_id,
                    created_ms=now_ms,
                    last_seen_ms=now_ms,
                    expires_ms=expires_ms,
                    ip=ip,
                    user_agent=(user_agent or "")[:200] or None,
                )
            )

    async def get(self, digest: bytes) -> SessionRecord | None:
        query = (
            select(
                dashboard_sessions.c.created_ms.label("s_created_ms"),
                dashboard_sessions.c.last_seen_ms,
                dashboard_sessions.c.expires_ms,
                *[c for c in accounts.c if c.name != "password_hash"],
            )
            .join(accounts, accounts.c.id == dashboard_sessions.c.account_id)
            .where(dashboard_sessions.c.digest == digest)
        )
        async with translated_errors(), self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return SessionRecord(
            digest=digest,
            account=account_from_row(row),
            created_ms=int(row.s_created_ms),
            last_seen_ms=int(row.last_seen_ms),
            expires_ms=int(row.expires_ms),
        )

    async def touch(self, digest: bytes, now_ms: int) -> None:
        async with translated_errors(), self._engine.begin() as conn:
            await conn.execute(
                update(dashboard_sessions)
                .where(dashboard_sessions.c.digest == digest)
                .values(last_seen_ms=now_ms)
            )

    async def delete(self, digest: bytes) -> None:
        async with translated_errors(), self._engine.begin() as conn:
            await conn.execute(
                delete(dashboard_sessions).where(dashboard_sessions.c.digest == digest)
            )

    async def count_for(self, account_id: str) -> int:
        async with translated_errors(), self._engine.connect() as conn:
            count = (
                await conn.execute(
                    select(func.count()).where(dashboard_sessions.c.account_id == account_id)
                )
            ).scalar_one()
        return int(count)

    async def prune(self, now_ms: int, idle_ms: int) -> None:
        """Forget sessions past either expiry (they are refused anyway)."""
        async with translated_errors(), self._engine.begin() as conn:
            await conn.execute(
                delete(dashboard_sessions).where(
                    or_(
                        dashboard_sessions.c.expires_ms <= now_ms,
                        dashboard_sessions.c.last_seen_ms <= now_ms - idle_ms,
                    )
                )
            )

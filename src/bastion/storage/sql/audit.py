"""The audit log of operator and security events (credit changes, key events, sign-ins)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bastion.core.calendar import now_ms
from bastion.storage.sql.engine import translated_errors
from bastion.storage.sql.tables import audit_log


async def record_audit(
    conn: AsyncConnection,
    *,
    actor: str,
    action: str,
    account_id: str | None = None,
    key_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        insert(audit_log).values(
            created_ms=now_ms(),
            actor=actor,
            action=action,
            account_id=account_id,
            key_id=key_id,
            details=json.dumps(details, sort_keys=True) if details else None,
        )
    )


class SqlAuditLog:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def record(self, **event: Any) -> None:
        async with translated_errors(), self._engine.begin() as conn:
            await record_audit(conn, **event)

    async def list(
        self,
        *,
        account_id: str | None = None,
        action: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
        if account_id:
            query = query.where(audit_log.c.account_id == account_id)
        if action:
            query = query.where(audit_log.c.action == action)
        async with translated_errors(), self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        out = []
        for r in rows:
            item = dict(r._mapping)
            item["details"] = json.loads(item["details"]) if item["details"] else None
            out.append(item)
        return out

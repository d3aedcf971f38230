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
        key_id: str | None = None,
        actor: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Events newest first.  ``action`` and ``actor`` match exactly, or by prefix when
        they end with ``*`` (``key.*``, ``account:*``); ``since_ms`` is inclusive,
        ``until_ms`` exclusive."""
        query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
        if account_id:
            query = query.where(audit_log.c.account_id == account_id)
        if key_id:
            query = query.where(audit_log.c.key_id == key_id)
        for column, wanted in ((audit_log.c.action, action), (audit_log.c.actor, actor)):
            if wanted and wanted.endswith("*"):
                query = query.where(column.startswith(wanted[:-1], autoescape=True))
            elif wanted:
                query = query.where(column == wanted)
        if since_ms is not None:
            query = query.where(audit_log.c.created_ms >= since_ms)
        if until_ms is not None:
            query = query.where(audit_log.c.created_ms < until_ms)
        async with translated_errors(), self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        out = []
        for r in rows:
            item = dict(r._mapping)
            item["details"] = json.loads(item["details"]) if item["details"] else None
            out.append(item)
        return out

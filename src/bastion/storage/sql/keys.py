"""API keys in the store of record: only digests, never secrets."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Row, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.core.calendar import now_ms
from bastion.core.keys import NewKey, new_id
from bastion.core.records import KeyRecord, Principal
from bastion.errors import OperatorError
from bastion.storage.sql.accounts import account_from_row
from bastion.storage.sql.changes import record_change
from bastion.storage.sql.engine import translated_errors
from bastion.storage.sql.tables import accounts, api_keys

_KEY_COLUMNS = [c for c in api_keys.c if c.name != "digest"]
_ACCOUNT_COLUMNS = [c.label(f"acct__{c.name}") for c in accounts.c if c.name != "password_hash"]


def key_from_row(row: Row[Any] | Any, prefix: str = "") -> KeyRecord:
    m = row._mapping
    return KeyRecord(
        id=m[prefix + "id"],
        account_id=m[prefix + "account_id"],
        label=m[prefix + "label"],
        display_prefix=m[prefix + "display_prefix"],
        created_ms=int(m[prefix + "created_ms"]),
        last_used_ms=m[prefix + "last_used_ms"],
        revoked_ms=m[prefix + "revoked_ms"],
        revoked_reason=m[prefix + "revoked_reason"],
        rpm_override=m[prefix + "rpm_override"],
        concurrency_override=m[prefix + "concurrency_override"],
        monthly_spend_cap=m[prefix + "monthly_spend_cap"],
    )


class _AccountView:
    """Adapts a joined row to the column names :func:`account_from_row` reads."""

    def __init__(self, row: Row[Any]) -> None:
        self._mapping = {
            k[len("acct__") :]: v for k, v in row._mapping.items() if k.startswith("acct__")
        }


class SqlKeyStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(self, account_id: str, label: str, new_key: NewKey) -> KeyRecord:
        key_id = new_id("key")
        async with translated_errors(), self._engine.begin() as conn:
            exists = (
                await conn.execute(select(accounts.c.id).where(accounts.c.id == account_id))
            ).first()
            if exists is None:
                raise OperatorError(f"no account {account_id}")
            await conn.execute(
                api_keys.insert().values(
                    id=key_id,
                    account_id=account_id,
                    label=label,
                    digest=new_key.digest,
                    display_prefix=new_key.display_prefix,
                    created_ms=now_ms(),
                )
            )
            await record_change(conn, "key", account_id=account_id, key_id=key_id)
        found = await self.get(key_id)
        assert found is not None
        return found

    async def get(self, key_id: str) -> KeyRecord | None:
        async with translated_errors(), self._engine.connect() as conn:
            row = (await conn.execute(select(*_KEY_COLUMNS).where(api_keys.c.id == key_id))).first()
        return key_from_row(row) if row else None

    async def list_for(self, account_id: str) -> list[KeyRecord]:
        async with translated_errors(), self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(*_KEY_COLUMNS)
                    .where(api_keys.c.account_id == account_id)
                    .order_by(api_keys.c.created_ms)
                )
            ).all()
        return [key_from_row(r) for r in rows]

    async def principal_by_digest(self, digest: bytes) -> Principal | None:
        """The key and its account in one read (an active key of any account status)."""
        query = (
            select(*_KEY_COLUMNS, *_ACCOUNT_COLUMNS)
            .join(accounts, accounts.c.id == api_keys.c.account_id)
            .where(api_keys.c.digest == digest)
        )
        async with translated_errors(), self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return Principal(key=key_from_row(row), account=account_from_row(_AccountView(row)))

    async def principals(self, key_ids: Iterable[str]) -> dict[str, Principal]:
        """Re-read many cached keys at once (the periodic re-validation)."""
        ids = list(key_ids)
        if not ids:
            return {}
        query = (
            select(*_KEY_COLUMNS, *_ACCOUNT_COLUMNS)
            .join(accounts, accounts.c.id == api_keys.c.account_id)
            .where(api_keys.c.id.in_(ids))
        )
        async with translated_errors(), self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {
            r.id: Principal(key=key_from_row(r), account=account_from_row(_AccountView(r)))
            for r in rows
        }

    async def revoke(self, key_id: str, reason: str) -> KeyRecord:
        """Idempotent: revoking a revoked key keeps the first revocation's time and reason."""
        async with translated_errors(), self._engine.begin() as conn:
            row = (
                await conn.execute(select(api_keys.c.account_id).where(api_keys.c.id == key_id))
            ).first()
            if row is None:
                raise OperatorError(f"no key {key_id}")
            result = await conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_ms.is_(None))
                .values(revoked_ms=now_ms(), revoked_reason=reason)
            )
            if result.rowcount:
                await record_change(conn, "key", account_id=row.account_id, key_id=key_id)
        found = await self.get(key_id)
        assert found is not None
        return found

    async def set_limits(self, key_id: str, **values: int | None) -> KeyRecord:
        allowed = {"rpm_override", "concurrency_override", "monthly_spend_cap"}
        if not values or set(values) - allowed:
            raise OperatorError(f"unknown key limits: {sorted(set(values) - allowed)}")
        async with translated_errors(), self._engine.begin() as conn:
            row = (
                await conn.execute(select(api_keys.c.account_id).where(api_keys.c.id == key_id))
            ).first()
            if row is None:
                raise OperatorError(f"no key {key_id}")
            await conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(**values))
            await record_change(conn, "key", account_id=row.account_id, key_id=key_id)
        found = await self.get(key_id)
        assert found is not None
        return found

    async def mark_used(self, last_used: dict[str, int]) -> None:
        """Batched ``last_used_ms`` updates (written every few seconds, not per request)."""
        if not last_used:
            return
        statement = (
            update(api_keys)
            .where(api_keys.c.id == bindparam("kid"))
            .values(last_used_ms=bindparam("used"))
        )
        async with translated_errors(), self._engine.begin() as conn:
            await conn.execute(
                statement, [{"kid": k, "used": v} for k, v in sorted(last_used.items())]
            )

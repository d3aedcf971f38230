"""Accounts in the store of record."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.core.calendar import now_ms
from bastion.core.keys import new_id
from bastion.core.records import AccountRecord
from bastion.errors import OperatorError
from bastion.storage.sql.changes import record_change
from bastion.storage.sql.engine import translated_errors
from bastion.storage.sql.tables import accounts


def account_from_row(row: Row[Any] | Any) -> AccountRecord:
    m = row._mapping
    return AccountRecord(
        id=m["id"],
        email=m["email"],
        phone=m["phone"],
        phone_verified=bool(m["phone_verified"]),
        tier=m["tier"],
        status=m["status"],
        role=m["role"],
        balance=int(m["balance"]),
        version=int(m["version"]),
        created_ms=int(m["created_ms"]),
        low_balance_threshold=m["low_balance_threshold"],
    )


class SqlAccounts:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(
        self,
        *,
        email: str,
        phone: str,
        tier: str,
        phone_verified: bool,
        role: str = "customer",
        password_hash: str | None = None,
    ) -> AccountRecord:
        account_id = new_id("acct")
        values = {
            "id": account_id,
            "email": email,
            "phone": phone,
            "phone_verified": phone_verified,
            "tier": tier,
            "status": "active",
            "role": role,
            "password_hash": password_hash,
            "balance": 0,
            "version": 0,
            "created_ms": now_ms(),
        }
        async with translated_errors():
            try:
                async with self._engine.begin() as conn:
                    await conn.execute(accounts.insert().values(**values))
            except IntegrityError:
                raise OperatorError(f"an account with email {email} already exists") from None
        found = await self.get(account_id)
        assert found is not None
        return found

    async def get(self, account_id: str) -> AccountRecord | None:
        async with translated_errors(), self._engine.connect() as conn:
            row = (await conn.execute(select(accounts).where(accounts.c.id == account_id))).first()
        return account_from_row(row) if row else None

    async def by_email(self, email: str) -> AccountRecord | None:
        async with translated_errors(), self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(accounts).where(func.lower(accounts.c.email) == email.lower())
                )
            ).first()
        return account_from_row(row) if row else None

    async def search(self, text: str = "", limit: int = 100) -> list[AccountRecord]:
        query = select(accounts).order_by(accounts.c.created_ms.desc()).limit(limit)
        if text:
            pattern = f"%{text.lower()}%"
            query = query.where(
                or_(
                    func.lower(accounts.c.email).like(pattern),
                    accounts.c.id.like(pattern),
                    accounts.c.phone.like(pattern),
                )
            )
        async with translated_errors(), self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [account_from_row(r) for r in rows]

    async def update(self, account_id: str, **values: Any) -> AccountRecord:
        """Change account fields (tier, status, ...) and announce it on the change feed."""
        async with translated_errors(), self._engine.begin() as conn:
            result = await conn.execute(
                update(accounts).where(accounts.c.id == account_id).values(**values)
            )
            if result.rowcount == 0:
                raise OperatorError(f"no account {account_id}")
            await record_change(conn, "account", account_id=account_id)
        found = await self.get(account_id)
        assert found is not None
        return found

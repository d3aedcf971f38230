"""Dashboard passwords: the Argon2id hash of an account's password and the changes to it.

A password change ends the account's other sessions in the same transaction, so a stolen
session cannot outlive the change that was meant to shut it out.
"""

from __future__ import annotations

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.core.records import AccountRecord
from bastion.errors import OperatorError
from bastion.storage.sql.accounts import account_from_row
from bastion.storage.sql.audit import record_audit
from bastion.storage.sql.engine import translated_errors
from bastion.storage.sql.tables import accounts, dashboard_sessions


class SqlCredentials:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def by_email(self, email: str) -> tuple[AccountRecord, str | None] | None:
        async with translated_errors(), self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(accounts).where(func.lower(accounts.c.email) == email.lower())
                )
            ).first()
        return (account_from_row(row), row.password_hash) if row else None

    async def password_hash(self, account_id: str) -> str | None:
        async with translated_errors(), self._engine.connect() as conn:
            value = (
                await conn.execute(
                    select(accounts.c.password_hash).where(accounts.c.id == account_id)
                )
            ).scalar_one_or_none()
        return str(value) if value else None

    async def set_password(
        self,
        account_id: str,
        password_hash: str,
        *,
        actor: str,
        action: str = "account.password",
        keep_session: bytes | None = None,
    ) -> None:
        """New hash, every other session of the account ended, audited: one commit."""
        async with translated_errors(), self._engine.begin() as conn:
            result = await conn.execute(
                update(accounts)
                .where(accounts.c.id == account_id)
                .values(password_hash=password_hash)
            )
            if result.rowcount == 0:
                raise OperatorError(f"no account {account_id}")
            ended = delete(dashboard_sessions).where(dashboard_sessions.c.account_id == account_id)
            if keep_session is not None:
                ended = ended.where(dashboard_sessions.c.digest != keep_session)
            await conn.execute(ended)
            await record_audit(conn, actor=actor, action=action, account_id=account_id)

    async def rehash(self, account_id: str, password_hash: str) -> None:
        """Store a stronger hash of the same password (after a sign-in); nothing else moves."""
        async with translated_errors(), self._engine.begin() as conn:
            await conn.execute(
                update(accounts)
                .where(accounts.c.id == account_id)
                .values(password_hash=password_hash)
            )

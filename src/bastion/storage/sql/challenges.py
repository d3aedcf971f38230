"""Phone challenges: one-time codes sent for sign-up verification and password resets.

Only the latest challenge of an account and purpose is live: opening one supersedes the
others in the same commit.  A check is counted before the code is compared (an atomic
``attempts + 1`` guarded by the limit), so parallel guesses cannot exceed the limit.  What a
successful check unlocks (a verified phone, a new password) commits together with the
challenge's approval.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bastion.core.records import AccountRecord
from bastion.errors import OperatorError
from bastion.storage.sql.accounts import account_from_row
from bastion.storage.sql.audit import record_audit
from bastion.storage.sql.changes import record_change
from bastion.storage.sql.engine import translated_errors
from bastion.storage.sql.tables import accounts, dashboard_sessions, phone_challenges

PENDING = "pending"
APPROVED = "approved"
SUPERSEDED = "superseded"
EXHAUSTED = "exhausted"


@dataclass(frozen=True, slots=True)
class Challenge:
    id: str
    purpose: str
    account_id: str
    phone: str
    provider: str
    code_digest: bytes | None
    status: str
    attempts: int
    created_ms: int
    expires_ms: int


def _challenge(row: Row[Any]) -> Challenge:
    m = row._mapping
    return Challenge(
        id=m["id"],
        purpose=m["purpose"],
        account_id=m["account_id"],
        phone=m["phone"],
        provider=m["provider"],
        code_digest=bytes(m["code_digest"]) if m["code_digest"] is not None else None,
        status=m["status"],
        attempts=int(m["attempts"]),
        created_ms=int(m["created_ms"]),
        expires_ms=int(m["expires_ms"]),
    )


class SqlChallenges:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def open(self, challenge: Challenge, ip: str | None) -> None:
        async with translated_errors(), self._engine.begin() as conn:
            await conn.execute(
                update(phone_challenges)
                .where(
                    phone_challenges.c.account_id == challenge.account_id,
                    phone_challenges.c.purpose == challenge.purpose,
                    phone_challenges.c.status == PENDING,
                )
                .values(status=SUPERSEDED)
            )
            await conn.execute(
                phone_challenges.insert().values(
                    id=challenge.id,
                    purpose=challenge.purpose,
                    account_id=challenge.account_id,
                    phone=challenge.phone,
                    provider=challenge.provider,
                    code_digest=challenge.code_digest,
                    status=challenge.status,
                    attempts=challenge.attempts,
                    created_ms=challenge.created_ms,
                    expires_ms=challenge.expires_ms,
                    ip=ip,
                )
            )

    async def get(self, challenge_id: str) -> Challenge | None:
        async with translated_errors(), self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(phone_challenges).where(phone_challenges.c.id == challenge_id)
                )
            ).first()
        return _challenge(row) if row else None

    async def latest(self, account_id: str, purpose: str) -> Challenge | None:
        async with translated_errors(), self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(phone_challenges)
                    .where(
                        phone_challenges.c.account_id == account_id,
                        phone_challenges.c.purpose == purpose,
                    )
                    .order_by(phone_challenges.c.created_ms.desc(), phone_challenges.c.id)
                    .limit(1)
                )
            ).first()
        return _challenge(row) if row else None

    async def count_check(
        self, challenge_id: str, max_attempts: int, now_ms: int
    ) -> tuple[bool, Challenge | None]:
        """Count one check of a live challenge: (counted, the challenge as it now is).

        Not counted when the challenge is not pending, has expired or has no checks left."""
        async with translated_errors(), self._engine.begin() as conn:
            result = await conn.execute(
                update(phone_challenges)
                .where(
                    phone_challenges.c.id == challenge_id,
                    phone_challenges.c.status == PENDING,
                    phone_challenges.c.attempts < max_attempts,
                    phone_challenges.c.expires_ms > now_ms,
                )
                .values(attempts=phone_challenges.c.attempts + 1)
            )
            row = (
                await conn.execute(
                    select(phone_challenges).where(phone_challenges.c.id == challenge_id)
                )
            ).first()
        return result.rowcount == 1, _challenge(row) if row else None

    async def set_status(self, challenge_id: str, status: str) -> None:
        async with translated_errors(), self._engine.begin() as conn:
            await conn.execute(
                update(phone_challenges)
                .where(phone_challenges.c.id == challenge_id, phone_challenges.c.status == PENDING)
                .values(status=status)
            )

    async def _approve(self, conn: AsyncConnection, challenge: Challenge) -> None:
        result = await conn.execute(
            update(phone_challenges)
            .where(phone_challenges.c.id == challenge.id, phone_challenges.c.status == PENDING)
            .values(status=APPROVED)
        )
        if result.rowcount != 1:
            raise OperatorError("this code was already used")  # a parallel check won

    async def approve_phone(self, challenge: Challenge, *, actor: str) -> AccountRecord:
        """The code was right: the phone is verified, in the same commit as the approval."""
        async with translated_errors(), self._engine.begin() as conn:
            await self._approve(conn, challenge)
            await conn.execute(
                update(accounts)
                .where(accounts.c.id == challenge.account_id)
                .values(phone_verified=True)
            )
            await record_change(conn, "account", account_id=challenge.account_id)
            await record_audit(
                conn,
                actor=actor,
                action="account.phone_verified",
                account_id=challenge.account_id,
                details={"challenge": challenge.id},
            )
            row = (
                await conn.execute(select(accounts).where(accounts.c.id == challenge.account_id))
            ).one()
        return account_from_row(row)

    async def approve_reset(self, challenge: Challenge, password_hash: str, *, actor: str) -> None:
        """The code was right: new password, every session ended, audited; one commit."""
        async with translated_errors(), self._engine.begin() as conn:
            await self._approve(conn, challenge)
            await conn.execute(
                update(accounts)
                .where(accounts.c.id == challenge.account_id)
                .values(password_hash=password_hash)
            )
            await conn.execute(
                delete(dashboard_sessions).where(
                    dashboard_sessions.c.account_id == challenge.account_id
                )
            )
            await record_audit(
                conn,
                actor=actor,
                action="account.password_reset",
                account_id=challenge.account_id,
                details={"challenge": challenge.id},
            )

    async def verified_elsewhere(self, phone: str, account_id: str) -> int:
        """How many other accounts already verified this number."""
        async with translated_errors(), self._engine.connect() as conn:
            count = (
                await conn.execute(
                    select(func.count()).where(
                        accounts.c.phone == phone,
                        accounts.c.phone_verified.is_(True),
                        accounts.c.id != account_id,
                    )
                )
            ).scalar_one()
        return int(count)

    async def prune(self, older_than_ms: int) -> None:
        async with translated_errors(), self._engine.begin() as conn:
            await conn.execute(
                delete(phone_challenges).where(phone_challenges.c.expires_ms < older_than_ms)
            )

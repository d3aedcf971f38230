"""Key use cases: create (the secret is shown once), list, revoke, per-key limits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bastion.core import keys
from bastion.core.records import KeyRecord
from bastion.errors import OperatorError
from bastion.storage.sql.database import Database
from bastion.storage.sql.engine import translated_errors

MAX_LABEL = 200
LIMIT_COLUMNS = {"rpm_override": 1, "concurrency_override": 1, "monthly_spend_cap": 0}


@dataclass(frozen=True, slots=True)
class CreatedKey:
    record: KeyRecord
    secret: str


class KeyAdmin:
    def __init__(self, db: Database, on_revoke: Callable[[str], None] | None = None) -> None:
        self._db = db
        self._on_revoke = on_revoke

    async def create(self, account_id: str, label: str, *, actor: str) -> CreatedKey:
        label = label.strip()
        if not label or len(label) > MAX_LABEL:
            raise OperatorError(f"a key label must be 1 to {MAX_LABEL} characters")
        account = await self._db.accounts.get(account_id)
        if account is None:
            raise OperatorError(f"no account {account_id}")
        if not account.phone_verified:
            raise OperatorError("the account's phone number is not verified yet")
        if not account.is_active:
            raise OperatorError(f"account {account_id} is {account.status}")
        new_key = keys.generate()
        record = await self._db.keys.create(account_id, label, new_key)
        await self._db.audit.record(
            actor=actor,
            action="key.create",
            account_id=account_id,
            key_id=record.id,
            details={"label": label, "prefix": record.display_prefix},
        )
        return CreatedKey(record=record, secret=new_key.secret)

    async def list(self, account_id: str) -> list[KeyRecord]:
        if await self._db.accounts.get(account_id) is None:
            raise OperatorError(f"no account {account_id}")
        return await self._db.keys.list_for(account_id)

    async def revoke(self, key_id: str, *, actor: str, reason: str = "revoked") -> KeyRecord:
        record = await self._db.keys.revoke(key_id, reason)
        await self._db.audit.record(
            actor=actor,
            action="key.revoke",
            account_id=record.account_id,
            key_id=key_id,
            details={"reason": reason},
        )
        if self._on_revoke is not None:
            self._on_revoke(key_id)  # this process: immediately, before answering
        return record

    async def set_limits(
        self, key_id: str, changes: dict[str, int | None], *, actor: str
    ) -> KeyRecord:
        """Override a key's limits: ``rpm_override``, ``concurrency_override`` (None: the
        tier's) and ``monthly_spend_cap`` in micro-USD (None: no cap)."""
        for column, value in changes.items():
            if column not in LIMIT_COLUMNS:
                raise OperatorError(f"unknown key limit {column!r}")
            if value is not None and value < LIMIT_COLUMNS[column]:
                raise OperatorError(f"{column} must be at least {LIMIT_COLUMNS[column]}")
        record = await self._db.keys.set_limits(key_id, **changes)
        if self._on_revoke is not None:
            self._on_revoke(key_id)  # drop this process's cached copy now (and ring the others)
        await self._db.audit.record(
            actor=actor,
            action="key.limits",
            account_id=record.account_id,
            key_id=key_id,
            details=dict(changes),
        )
        return record


async def find_by_secret(db: Database, secret: str) -> KeyRecord | None:
    """The key a raw secret belongs to (used when a key is seen on the plain-HTTP listener)."""
    if not keys.is_well_formed(secret):
        return None
    async with translated_errors():
        principal = await db.keys.principal_by_digest(keys.digest(secret))
    return principal.key if principal else None

"""Account use cases: create (operator-created accounts are trusted: phone verified),
change tier, suspend and resume."""

from __future__ import annotations

import re
from collections.abc import Callable

from bastion.core.phone import PhoneError, normalise
from bastion.core.records import AccountRecord
from bastion.errors import OperatorError
from bastion.settings import Settings
from bastion.storage.sql.database import Database

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{1,63}$")


def check_email(email: str) -> str:
    email = email.strip()
    if not _EMAIL.match(email):
        raise OperatorError(f"{email!r} is not an email address")
    return email


class AccountAdmin:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        self._db = db
        self.settings = settings
        self._on_change = on_change

    def _changed(self, account_id: str) -> None:
        if self._on_change is not None:
            self._on_change(account_id)  # this process drops cached keys now; others follow

    def _tier(self, tier: str | None) -> str:
        name = tier or self.settings.billing.default_tier
        if name not in self.settings.tiers:
            raise OperatorError(
                f"unknown tier {name!r} (defined: {', '.join(sorted(self.settings.tiers))})"
            )
        return name

    async def create(
        self,
        *,
        email: str,
        phone: str,
        tier: str | None,
        actor: str,
        role: str = "customer",
        phone_verified: bool = True,
        password_hash: str | None = None,
    ) -> AccountRecord:
        try:
            e164 = normalise(phone)
        except PhoneError as exc:
            raise OperatorError(str(exc)) from None
        account = await self._db.accounts.create(
            email=check_email(email),
            phone=e164,
            tier=self._tier(tier),
            phone_verified=phone_verified,
            role=role,
            password_hash=password_hash,
        )
        await self._db.audit.record(
            actor=actor,
            action="account.create",
            account_id=account.id,
            details={"tier": account.tier, "role": role},
        )
        return account

    async def get(self, account_id: str) -> AccountRecord:
        account = await self._db.accounts.get(account_id)
        if account is None:
            raise OperatorError(f"no account {account_id}")
        return account

    async def set_tier(self, account_id: str, tier: str, *, actor: str) -> AccountRecord:
        before = await self.get(account_id)
        account = await self._db.accounts.update(account_id, tier=self._tier(tier))
        await self._db.audit.record(
            actor=actor,
            action="account.tier",
            account_id=account_id,
            details={"from": before.tier, "to": account.tier},
        )
        self._changed(account_id)
        return account

    async def set_status(self, account_id: str, status: str, *, actor: str) -> AccountRecord:
        if status not in ("active", "suspended"):
            raise OperatorError("status must be active or suspended")
        await self.get(account_id)
        account = await self._db.accounts.update(account_id, status=status)
        await self._db.audit.record(
            actor=actor,
            action=f"account.{'suspend' if status == 'suspended' else 'resume'}",
            account_id=account_id,
        )
        self._changed(account_id)
        return account

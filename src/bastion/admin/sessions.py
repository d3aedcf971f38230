"""Dashboard sign-in, sessions, sign-out and password changes.

A session id is 256 random bits, given to the browser once (in a ``__Host-`` cookie) and
stored only as its SHA-256 digest; it is never logged.  It ends after ``session_idle_minutes``
without a request or ``session_absolute_hours`` after sign-in, whichever comes first, at
sign-out, and for every session of the account when its password changes.  Signing in always
makes a new id (rotation): an id planted before sign-in is worthless after it.
"""

from __future__ import annotations

import hashlib
import logging
import secrets

from bastion.admin.forms import FORM, FormError
from bastion.admin.passwords import (
    check_new_password,
    hash_password,
    needs_rehash,
    verify_password,
)
from bastion.admin.throttle import MINUTE_MS, Limit, Throttle
from bastion.core.clock import Clock
from bastion.core.records import AccountRecord
from bastion.settings.model import DashboardSettings
from bastion.storage.sql.audit import SqlAuditLog
from bastion.storage.sql.credentials import SqlCredentials
from bastion.storage.sql.sessions import SessionRecord, SqlSessions

log = logging.getLogger("bastion.sessions")

TOKEN_BYTES = 32
TOUCH_EVERY_MS = 60_000
WRONG = "The email or password is not correct."


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Sessions:
    def __init__(
        self,
        store: SqlSessions,
        credentials: SqlCredentials,
        audit: SqlAuditLog,
        throttle: Throttle,
        settings: DashboardSettings,
        clock: Clock,
    ) -> None:
        self._store = store
        self._credentials = credentials
        self._audit = audit
        self._throttle = throttle
        self._settings = settings
        self._clock = clock
        self.idle_ms = settings.session_idle_minutes * MINUTE_MS
        self.absolute_ms = settings.session_absolute_hours * 60 * MINUTE_MS
        self.per_account = Limit(
            "signin-account",
            settings.signin_attempts_per_account,
            15 * MINUTE_MS,
            "Too many sign-in attempts for this account.",
        )
        self.per_ip = Limit(
            "signin-ip",
            settings.signin_attempts_per_ip,
            15 * MINUTE_MS,
            "Too many sign-in attempts from here.",
        )

    def _now(self) -> int:
        return int(self._clock.wall_s() * 1000)

    async def sign_in(
        self,
        email: str,
        password: str,
        *,
        ip: str,
        user_agent: str | None,
        replaces: str | None = None,
    ) -> tuple[str, AccountRecord]:
        """(new session id, account); FormError with one generic message if anything is off."""
        email = email.strip()
        if not email or not password:
            raise FormError.field(FORM, "Enter your email and password.")
        await self._throttle.hit(self.per_ip, ip)
        await self._throttle.hit(self.per_account, email.lower())
        found = await self._credentials.by_email(email)
        stored = found[1] if found else None
        if not await verify_password(stored, password) or found is None or stored is None:
            await self._audit.record(
                actor="dashboard",
                action="signin.failed",
                account_id=found[0].id if found else None,
            )
            raise FormError.field(FORM, WRONG)
        account = found[0]
        if needs_rehash(stored):
            await self._credentials.rehash(account.id, await hash_password(password))
        await self._throttle.clear(self.per_account, email.lower())
        token = await self.open(account.id, ip=ip, user_agent=user_agent, replaces=replaces)
        await self._audit.record(
            actor=f"account:{account.id}", action="signin", account_id=account.id
        )
        return token, account

    async def open(
        self, account_id: str, *, ip: str, user_agent: str | None, replaces: str | None = None
    ) -> str:
        token = secrets.token_urlsafe(TOKEN_BYTES)
        now = self._now()
        await self._store.create(
            digest=digest(token),
            account_id=account_id,
            now_ms=now,
            expires_ms=now + self.absolute_ms,
            ip=ip,
            user_agent=user_agent,
            replaces=digest(replaces) if replaces else None,
        )
        return token

    async def resolve(self, token: str) -> SessionRecord | None:
        """The live session of a cookie value, or None (unknown, idle too long, too old)."""
        if not token or len(token) > 128:
            return None
        record = await self._store.get(digest(token))
        if record is None:
            return None
        now = self._now()
        if now >= record.expires_ms or now - record.last_seen_ms >= self.idle_ms:
            await self._store.delete(record.digest)
            return None
        if now - record.last_seen_ms >= TOUCH_EVERY_MS:
            await self._store.touch(record.digest, now)
        return record

    async def close(self, token: str) -> None:
        await self._store.delete(digest(token))

    async def change_password(
        self,
        account: AccountRecord,
        *,
        current: str,
        new: str,
        confirm: str,
        ip: str,
        user_agent: str | None,
    ) -> str:
        """Check the current password, store the new one, end every session of the account,
        and return a fresh session id for this browser."""
        await self._throttle.hit(self.per_account, account.email.lower())
        stored = await self._credentials.password_hash(account.id)
        if not await verify_password(stored, current):
            raise FormError.field("current_password", "This is not your current password.")
        check_new_password(
            new,
            confirm,
            email=account.email,
            min_length=self._settings.min_password_length,
            field="new_password",
            confirm_field="new_password_confirm",
        )
        if new == current:
            raise FormError.field("new_password", "Choose a password you have not used here.")
        await self._credentials.set_password(
            account.id, await hash_password(new), actor=f"account:{account.id}"
        )
        return await self.open(account.id, ip=ip, user_agent=user_agent)

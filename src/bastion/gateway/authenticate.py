"""Bearer key → :class:`Principal`, from an in-memory cache in front of the key store.

Bounds that the API contract promises:
- a key revoked through this process fails here at once (its entry is dropped);
- a key revoked elsewhere fails within the change-feed poll interval (0.25 s by default),
  or via Redis pub/sub in the scaled-out topology;
- no entry is served older than ``cache_ttl_s`` (5 s): a background task re-reads every
  cached key every ``revalidate_interval_s``, and a stale entry is re-read inline.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
from dataclasses import dataclass

from bastion.core import keys
from bastion.core.calendar import now_ms as wall_ms
from bastion.core.clock import Clock
from bastion.core.records import Principal
from bastion.errors import InvalidApiKeyError, StoreUnavailableError
from bastion.settings import AuthSettings
from bastion.storage.sql.keys import SqlKeyStore

log = logging.getLogger("bastion.auth")

MAX_NEGATIVE_ENTRIES = 100_000


@dataclass(slots=True)
class _Entry:
    digest: bytes
    principal: Principal
    fetched_ms: int


class Authenticator:
    def __init__(self, store: SqlKeyStore, settings: AuthSettings, clock: Clock) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        self._ttl_ms = int(settings.cache_ttl_s * 1000)
        self._negative_ms = int(settings.negative_cache_ttl_s * 1000)
        self._cache: dict[bytes, _Entry] = {}
        self._digest_of: dict[str, bytes] = {}
        self._negative: dict[bytes, int] = {}
        self._last_used: dict[str, int] = {}

    async def authenticate(self, header: str | None) -> Principal:
        token = keys.bearer_token(header)
        if token is None or not token.isascii():
            raise InvalidApiKeyError()
        digest = hashlib.sha256(token.encode("ascii")).digest()
        now = self._clock.now_ms()
        entry = self._cache.get(digest)
        if entry is None or now - entry.fetched_ms >= self._ttl_ms:
            # The form (prefix, length, checksum) is checked on a miss only: a cached digest
            # is a stored key's, well formed by construction.
            if not keys.is_well_formed(token):
                raise InvalidApiKeyError()
            entry = await self._load(digest, now)
        # The lookup is by digest; compare the stored one in constant time all the same.
        if not hmac.compare_digest(entry.digest, digest):
            raise InvalidApiKeyError()
        principal = entry.principal
        if (
            not principal.key.is_active
            or not principal.account.is_active
            or not principal.account.phone_verified
        ):
            raise InvalidApiKeyError()
        self._last_used[principal.key.id] = wall_ms()
        return principal

    async def _load(self, digest: bytes, now: int) -> _Entry:
        expires = self._negative.get(digest)
        if expires is not None:
            if expires > now:
                raise InvalidApiKeyError()
            del self._negative[digest]
        principal = await self._store.principal_by_digest(digest)
        if principal is None:
            if len(self._negative) >= MAX_NEGATIVE_ENTRIES:
                self._negative.clear()
            self._negative[digest] = now + self._negative_ms
            raise InvalidApiKeyError()
        entry = _Entry(digest, principal, now)
        self._cache[digest] = entry
        self._digest_of[principal.key.id] = digest
        return entry

    # -- invalidation ----------------------------------------------------------------------

    def drop_key(self, key_id: str) -> None:
        digest = self._digest_of.pop(key_id, None)
        if digest is not None:
            self._cache.pop(digest, None)
        # A key created elsewhere may sit in the negative cache; forget those too.
        self._negative.clear()

    def drop_account(self, account_id: str) -> None:
        for key_id in [
            e.principal.key.id for e in self._cache.values() if e.principal.account.id == account_id
        ]:
            self.drop_key(key_id)

    def drop_all(self) -> None:
        self._cache.clear()
        self._digest_of.clear()
        self._negative.clear()

    # -- background work -------------------------------------------------------------------

    async def revalidate(self) -> None:
        """Re-read every cached key in one query; drop what vanished."""
        if not self._digest_of:
            return
        started = self._clock.now_ms()
        fresh = await self._store.principals(list(self._digest_of))
        for key_id, digest in list(self._digest_of.items()):
            principal = fresh.get(key_id)
            entry = self._cache.get(digest)
            if principal is None or entry is None:
                self.drop_key(key_id)
            elif entry.fetched_ms < started:
                entry.principal = principal
                entry.fetched_ms = started

    async def run_revalidation(self) -> None:
        while True:
            await asyncio.sleep(self._settings.revalidate_interval_s)
            try:
                await self.revalidate()
            except StoreUnavailableError:
                log.warning("key revalidation failed: store unavailable")

    async def flush_last_used(self) -> None:
        used, self._last_used = self._last_used, {}
        if used:
            try:
                await self._store.mark_used(used)
            except StoreUnavailableError:
                # not money: losing a "last used" time is harmless, keep the newest for later
                for key_id, at in used.items():
                    self._last_used.setdefault(key_id, at)

    async def run_last_used(self, interval_s: float = 5.0) -> None:
        try:
            while True:
                await asyncio.sleep(interval_s)
                await self.flush_last_used()
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.flush_last_used())

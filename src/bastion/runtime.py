"""The composition root: the one place that knows every concrete class.

``Runtime`` builds the stores, upstream clients and use cases from :class:`Settings`, starts
their background tasks and closes them again.  Nothing else holds process-wide state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

from bastion.admin.accounts import AccountAdmin
from bastion.admin.credits import CreditAdmin
from bastion.admin.dashboard import DashboardServices
from bastion.admin.keys import KeyAdmin
from bastion.core.admission import AdmissionStore
from bastion.core.clock import Clock, SystemClock
from bastion.errors import ConfigError, StoreUnavailableError
from bastion.gateway.admission import Admission
from bastion.gateway.authenticate import Authenticator
from bastion.gateway.forward import Forwarder
from bastion.gateway.proxy import Gateway
from bastion.gateway.settlement import Settler
from bastion.gateway.synthesis import Synthesizer
from bastion.settings import Settings
from bastion.storage.memory.admission import MemoryAdmission
from bastion.storage.sql.database import Database
from bastion.upstream.circuit import CircuitBook
from bastion.upstream.openai import OpenAIUpstream
from bastion.upstream.riva import RivaUpstream

log = logging.getLogger("bastion.runtime")

SWEEP_INTERVAL_S = 5.0


class Runtime:
    def __init__(self, settings: Settings, *, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.db = Database.open(settings.storage, batch_max=settings.billing.settle_batch_max)
        self.admission_store: AdmissionStore = self._admission_store()
        self.authenticator = Authenticator(self.db.keys, settings.auth, self.clock)
        self.admission = Admission(
            self.admission_store,
            self.db.ledger,
            store_timeout_s=settings.storage.store_timeout_s,
            lease_ttl_s=settings.billing.hold_ttl_s,
        )
        self.upstreams = {
            name: OpenAIUpstream(u) for name, u in settings.upstreams.items() if u.kind == "openai"
        }
        self.circuits = CircuitBook(self.clock)
        self.forwarder = Forwarder(self.upstreams, self.circuits, self.clock)
        self.riva_upstreams = {
            name: RivaUpstream(u) for name, u in settings.upstreams.items() if u.kind == "riva"
        }
        self.synthesizer = Synthesizer(self.riva_upstreams, self.circuits, self.clock)
        self.settler = Settler(self.db.settlements)
        self.gateway = Gateway(settings, self.admission, self.forwarder, self.settler)
        self.keys = KeyAdmin(self.db, on_revoke=self.authenticator.drop_key)
        self.credits = CreditAdmin(self.db)
        self.accounts = AccountAdmin(self.db, settings)
        self.dashboard = DashboardServices(
            self.db,
            settings,
            self.clock,
            keys=self.keys,
            credits=self.credits,
            accounts=self.accounts,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._change_seq = 0

    def _admission_store(self) -> AdmissionStore:
        if self.settings.storage.redis_url:
            raise ConfigError(
                f"{self.settings.file}: storage.redis_url: the Redis admission store is not "
                "available in this build"
            )
        return MemoryAdmission(clock=self.clock)

    async def start(self) -> None:
        if self.settings.storage.auto_migrate:
            await self.db.migrate()
        elif not await self.db.is_current():
            raise ConfigError("the database schema is not current: run `bastion migrate` first")
        self.db.settlements.start()
        self._change_seq = await self.db.changes.head()
        self._spawn(self._follow_changes(), "changes")
        self._spawn(self.authenticator.run_revalidation(), "revalidate")
        self._spawn(self.authenticator.run_last_used(), "last-used")
        self._spawn(self._sweep(), "sweep")
        await self.dashboard.start()
        self._spawn(self.dashboard.housekeeping(), "dashboard-housekeeping")
        if self.settings.alerts.enabled:
            self._spawn(self.dashboard.alerts.run(), "low-balance-alerts")

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(coroutine, name=f"bastion-{name}"))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        for upstream in self.upstreams.values():
            await upstream.close()
        for riva in self.riva_upstreams.values():
            await riva.close()
        await self.dashboard.close()
        await self.admission_store.close()
        await self.db.close()

    async def _follow_changes(self) -> None:
        """Apply what other processes changed: revoked keys, grants, tier changes."""
        interval = self.settings.auth.change_poll_interval_s
        while True:
            await asyncio.sleep(interval)
            try:
                await self.apply_changes()
            except StoreUnavailableError:
                log.warning("change feed unavailable")

    async def apply_changes(self) -> None:
        for change in await self.db.changes.since(self._change_seq):
            self._change_seq = change.seq
            if change.kind == "key" and change.key_id:
                self.authenticator.drop_key(change.key_id)
            elif change.kind == "account" and change.account_id:
                self.authenticator.drop_account(change.account_id)
                await self.admission_store.forget_account(change.account_id)
            elif change.kind == "balance" and change.account_id:
                await self.admission_store.forget_account(change.account_id)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            try:
                expired = await self.admission_store.sweep()
            except StoreUnavailableError:
                continue
            if expired:
                log.warning("swept expired holds", extra={"count": expired})

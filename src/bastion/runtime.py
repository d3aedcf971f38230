"""The composition root: the one place that knows every concrete class.

``Runtime`` builds the stores, upstream clients and use cases from :class:`Settings`, starts
their background tasks and closes them again.  Nothing else holds process-wide state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from pathlib import Path
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
from bastion.gateway.changes import ChangeFollower
from bastion.gateway.forward import Forwarder
from bastion.gateway.proxy import Gateway
from bastion.gateway.settlement import Settler
from bastion.gateway.synthesis import Synthesizer
from bastion.observability.metrics import Metrics
from bastion.reload import reload_logged
from bastion.settings import Settings
from bastion.storage.memory.admission import MemoryAdmission
from bastion.storage.memory.lock import ProcessLock
from bastion.storage.redis import admission as redis_store
from bastion.storage.redis.doorbell import RELOAD, RedisDoorbell
from bastion.storage.sql.database import Database
from bastion.upstream.circuit import CircuitBook
from bastion.upstream.openai import OpenAIUpstream
from bastion.upstream.riva import RivaUpstream

log = logging.getLogger("bastion.runtime")

SWEEP_INTERVAL_S = 5.0
REDIS_EPOCH = "redis_epoch:"


class Runtime:
    def __init__(self, settings: Settings, *, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.metrics = Metrics()
        self.draining = False
        """True once a graceful stop began: ``/readyz`` answers 503 meanwhile."""
        self.db = Database.open(settings.storage, batch_max=settings.billing.settle_batch_max)
        self.doorbell: RedisDoorbell | None = None
        self.redis_admission: redis_store.RedisAdmission | None = None
        self.admission_store: AdmissionStore = self._admission_store()
        self.authenticator = Authenticator(self.db.keys, settings.auth, self.clock)
        self.changes = ChangeFollower(
            self.db.changes, self.authenticator, self.admission_store, self.clock
        )
        self.admission = Admission(
            self.admission_store,
            self.db.ledger,
            store_timeout_s=settings.storage.store_timeout_s,
            lease_ttl_s=settings.billing.hold_ttl_s,
            store_failing=lambda: self.db.settlements.failing,
            metrics=self.metrics,
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
        self.gateway = Gateway(
            settings, self.admission, self.forwarder, self.settler, metrics=self.metrics
        )
        self.metrics.watch_circuits(self.circuits.snapshot)
        self.metrics.watch_settlements(lambda: self.db.settlements)
        self.keys = KeyAdmin(self.db, on_revoke=self._revoked)
        self.credits = CreditAdmin(self.db)
        self.accounts = AccountAdmin(self.db, settings, on_change=self._account_changed)
        self.dashboard = DashboardServices(
            self.db,
            settings,
            self.clock,
            keys=self.keys,
            credits=self.credits,
            accounts=self.accounts,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._ringing: set[asyncio.Task[None]] = set()
        self._lock = (
            ProcessLock(Path(settings.storage.database_url[len("sqlite:///") :]))
            if isinstance(self.admission_store, MemoryAdmission) and settings.storage.is_sqlite
            else None
        )

    def _admission_store(self) -> AdmissionStore:
        storage = self.settings.storage
        if not storage.redis_url:
            return MemoryAdmission(clock=self.clock)
        client = redis_store.connect(storage.redis_url, storage.store_timeout_s)
        self.doorbell = RedisDoorbell(client, storage.redis_prefix)
        self.redis_admission = redis_store.RedisAdmission(
            client,
            prefix=storage.redis_prefix,
            lease_ttl_s=storage.lease_ttl_s,
            heartbeat_s=storage.heartbeat_s,
            reserve_ahead=storage.reserve_ahead,
            read_epoch=lambda: self.db.meta.get(REDIS_EPOCH + storage.redis_prefix),
            write_epoch=lambda epoch: self.db.meta.set(REDIS_EPOCH + storage.redis_prefix, epoch),
        )
        admission = self.redis_admission
        self.metrics.watch_reservations(lambda: admission.reserved_admissions)
        return admission

    async def start(self) -> None:
        if self._lock is not None:
            self._lock.acquire()
        if self.settings.storage.auto_migrate:
            await self.db.migrate()
        elif not await self.db.is_current():
            raise ConfigError("the database schema is not current: run `bastion migrate` first")
        self.db.settlements.start()
        await self.changes.start()
        self._spawn(self._follow_changes(), "changes")
        if self.doorbell is not None:
            self._spawn(self.doorbell.listen(self._rung), "doorbell")
        if self.redis_admission is not None:
            self._spawn(self.redis_admission.run_heartbeat(), "heartbeat")
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
        for task in [*self._tasks, *self._ringing]:
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
        # ends of requests cut short: their releases and usage rows, before the stores close
        await self.gateway.drain(self.settings.storage.store_timeout_s * 4)
        await self.admission_store.close()
        await self.db.close()
        if self._lock is not None:
            self._lock.release()

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
        await self.changes.poll()

    async def _rung(self, message: str) -> None:
        if message == RELOAD:
            await reload_logged(self)
            return
        try:
            await self.changes.poll()
        except StoreUnavailableError:
            log.warning("change feed unavailable")

    def apply_settings(self, settings: Settings) -> None:
        """Swap in reloaded settings (catalog, tiers, upstreams, billing)."""
        self.settings = settings
        self.gateway.use_settings(settings)
        self.accounts.settings = settings

    def retire_reload(self) -> None:
        """SIGHUP: re-read the configuration file (in the background)."""
        self.retire(reload_logged(self))

    def retire(self, work: Coroutine[Any, Any, None]) -> None:
        """Background clean-up that must not block (closing replaced upstream clients)."""
        task = asyncio.create_task(work, name="bastion-retire")
        self._ringing.add(task)
        task.add_done_callback(self._ringing.discard)

    def _revoked(self, key_id: str) -> None:
        """A key revoked through this process: fail here at once, tell the others now."""
        self.authenticator.drop_key(key_id)
        self.ring()

    def _account_changed(self, account_id: str) -> None:
        self.authenticator.drop_account(account_id)
        self.ring()

    def ring(self) -> None:
        if self.doorbell is not None:
            task = asyncio.create_task(self._ring(), name="bastion-ring")
            self._ringing.add(task)
            task.add_done_callback(self._ringing.discard)

    async def _ring(self) -> None:
        assert self.doorbell is not None
        try:
            await self.doorbell.ring()
        except StoreUnavailableError:
            log.warning("could not ring the change doorbell; replicas will poll")

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            try:
                expired = await self.admission_store.sweep()
            except StoreUnavailableError:
                continue
            if expired:
                log.warning("swept expired holds", extra={"count": expired})

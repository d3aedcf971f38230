"""Admission shared by every replica, in Redis: one Lua script call per admission and one per
release, all on Redis's own clock (``TIME``), so replicas' clocks never matter.

Redis caches; it owns no money.  Balances and monthly spend are seeded from the store of
record and moved by the charges each replica commits there (applied by ledger version, so a
seed and a charge can never count the same money twice).  Leases and holds carry an expiry
that each replica's heartbeat extends for its live requests: a replica killed with -9 stops
refreshing and its slots and holds lapse within ``lease_ttl_s``.  If Redis comes back empty,
the heartbeat re-creates every live request's lease and hold, and admission pauses (503) for
a short recovery window while that happens, so no hold is forgotten.

Reserve ahead: when a request of a key ends, its replica asks Redis, right after the
release, to admit the key's next request in advance (a reservation: an admission like any
other, with its own slot, rate allowance and hold, twice the ending request's).  The next
request of that key on this replica, if its hold fits, is then admitted with no round trip:
scaled out, admission is the one wait on a request's way to its upstream, and on a quiet
replica a cold round trip to Redis costs about as much as all the rest of the gateway's
work.  Exactness is kept: a reservation is taken by the same script and counts against every
limit the moment it is taken, so no limit or balance can be exceeded.  What it costs is
bounded: Redis grants one only where the key and account have ample room (see
``admit.lua``), a replica holds at most one per key, and one left unused for a heartbeat
goes back, its rate allowance too.  Keys with small limits (under 60 requests a minute or
under 10 at a time) never get one, so they behave as if every replica were one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bastion.core.admission import AdmitRequest, AdmitResult, Outcome
from bastion.core.limits import LimitDecision
from bastion.errors import ServiceUnavailableError, StoreUnavailableError
from bastion.storage.redis.batcher import ScriptBatcher

log = logging.getLogger("bastion.redis")

EpochRead = Callable[[], Awaitable[str | None]]
EpochWrite = Callable[[str], Awaitable[None]]


def _script(name: str) -> str:
    return resources.files("bastion.storage.redis").joinpath("lua", name).read_text()


def connect(url: str, timeout_s: float, max_connections: int = 64) -> aioredis.Redis:
    """A client that fails fast: no retries, tight socket timeouts (fail closed in time), and
    a bounded pool that makes a burst of requests queue for a connection, not fail."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout_s,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
        decode_responses=True,
        health_check_interval=0,
    )
    return aioredis.Redis(connection_pool=pool)


class Translated:
    """Redis driver errors become :class:`StoreUnavailableError` at this boundary."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, kind: type[BaseException] | None, error: Any, _tb: Any) -> bool:
        if kind is not None and issubclass(
            kind, RedisConnectionError | RedisTimeoutError | OSError | TimeoutError
        ):
            raise StoreUnavailableError() from error
        if kind is not None and issubclass(kind, RedisError):
            raise StoreUnavailableError("The limiter store failed; retry shortly") from error
        return False


@dataclass(frozen=True, slots=True)
class _Live:
    hold_id: str
    """The id its slot and hold carry in Redis: its own, or that of the reservation it used."""
    hold: int
    """The hold taken in Redis: its own, or the reservation's, which its own fits in."""
    terms: AdmitRequest
    """What it was admitted with (key, account, month), to reserve the key's next request on
    the same terms."""

    @property
    def refresh(self) -> tuple[str, str, str, int, int]:
        """Its group of arguments to ``refresh.lua``."""
        terms = self.terms
        return (self.hold_id, terms.key_id, terms.account_id, self.hold, terms.month)


@dataclass(frozen=True, slots=True)
class _Reservation:
    """An admission taken in advance for a key's next request on this replica."""

    hold_id: str
    terms: AdmitRequest
    limit: LimitDecision
    available: int
    epoch: str
    made: float
    """``time.monotonic()`` when Redis granted it."""

    def fits(self, request: AdmitRequest) -> bool:
        terms = self.terms
        return (
            request.hold <= terms.hold
            and request.month == terms.month
            and request.account_id == terms.account_id
            and request.rate == terms.rate
            and request.concurrency == terms.concurrency
            and request.spend_cap == terms.spend_cap
        )


class RedisAdmission:
    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str,
        lease_ttl_s: float,
        heartbeat_s: float,
        read_epoch: EpochRead,
        write_epoch: EpochWrite,
        reserve_ahead: bool = True,
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._lease_ms = int(lease_ttl_s * 1000)
        self._heartbeat_s = heartbeat_s
        self._read_epoch = read_epoch
        self._write_epoch = write_epoch
        self._live: dict[str, _Live] = {}
        self._reserve_ahead = reserve_ahead
        self._reserved: dict[str, _Reservation] = {}
        """Per key id: the reservation this replica holds for the key's next request."""
        self._reserving: dict[str, asyncio.Future[Any]] = {}
        self._declined: dict[str, float] = {}
        """Key ids whose last reservation Redis declined (when): not asked again for a
        heartbeat."""
        self._closing = False
        self.reserved_admissions = 0
        """Requests admitted on a reservation, without a round trip (for the metrics)."""
        self._admit = client.register_script(_script("admit.lua"))
        self._release = client.register_script(_script("release.lua"))
        self._seed_account = client.register_script(_script("seed_account.lua"))
        self._seed_key = client.register_script(_script("seed_key.lua"))
        self._refresh = client.register_script(_script("refresh.lua"))
        self._epoch = client.register_script(_script("epoch.lua"))
        self._batch = ScriptBatcher(client, Translated)
        self.epoch: str | None = None

    # -- key names (a stable format: see docs/operations.md) -------------------------------

    def _k(self, *parts: str | int) -> str:
        if len(parts) == 2:  # a kind and an id: most keys, ~13 a request (0.2 µs, not 1.4)
            return f"{self._prefix}{parts[0]}:{parts[1]}"
        return self._prefix + ":".join(map(str, parts))

    # -- the AdmissionStore protocol -------------------------------------------------------

    def _admit_call(self, request: AdmitRequest, reserve: bool) -> tuple[list[str], list[Any]]:
        keys = [
            self._k("rl", request.key_id),
            self._k("cc", request.key_id),
            self._k("acct", request.account_id),
            self._k("spend", request.key_id, request.month),
            self._k("hold", request.request_id),
            self._k("holds", request.account_id),
            self._k("epoch"),
        ]
        args: list[str | int] = [
            request.rate.interval_ms,
            request.rate.burst,
            request.concurrency,
            request.hold,
            -1 if request.spend_cap is None else request.spend_cap,
            self._lease_ms,
            request.request_id,
            request.key_id,
            request.account_id,
            request.month,
            self._prefix,
            1 if reserve else 0,
        ]
        return keys, args

    async def admit(self, request: AdmitRequest) -> AdmitResult:
        if self._reserve_ahead:
            coming = self._reserving.get(request.key_id)
            if coming is not None:
                # already on its way, ahead of anything this request could send
                await asyncio.wait([coming])
            reserved = self._use_reservation(request)
            if reserved is not None:
                return reserved
        keys, args = self._admit_call(request, reserve=False)
        for _ in range(3):
            reply = await self._batch.call(self._admit, keys, args)
            outcome, retry_ms, remaining, reset_ms, available, epoch = reply
            if outcome == "no_epoch":
                await self._establish_epoch()
                continue
            if outcome == "recovering":
                raise ServiceUnavailableError(
                    "The limiter is recovering from a restart; retry in a second"
                )
            self.epoch = epoch
            decision = LimitDecision(
                allowed=outcome != "rate_limited",
                tat_ms=0,
                retry_after_ms=int(retry_ms),
                remaining=int(remaining),
                reset_ms=int(reset_ms),
            )
            result = AdmitResult(
                Outcome(outcome), decision, available=int(available), retry_after_ms=int(retry_ms)
            )
            if result.outcome is Outcome.ADMITTED:
                self._live[request.request_id] = _Live(request.request_id, request.hold, request)
            return result
        raise StoreUnavailableError()

    # -- reserve ahead ---------------------------------------------------------------------

    def _use_reservation(self, request: AdmitRequest) -> AdmitResult | None:
        reservation = self._reserved.pop(request.key_id, None)
        if reservation is None:
            return None
        fresh = time.monotonic() - reservation.made < 2 * self._heartbeat_s
        if not (fresh and reservation.epoch == self.epoch and reservation.fits(request)):
            self._unreserve(reservation)  # other terms now: the next release reserves anew
            return None
        # same key, account and month as the reservation (it fits)
        self._live[request.request_id] = _Live(reservation.hold_id, reservation.terms.hold, request)
        self.reserved_admissions += 1
        return AdmitResult(Outcome.ADMITTED, reservation.limit, available=reservation.available)

    def _reserve_next(self, terms: AdmitRequest) -> None:
        """Ask for an admission of the key's next request, in the next pipeline."""
        key_id = terms.key_id
        if key_id in self._reserved or key_id in self._reserving:
            return
        declined = self._declined.get(key_id)
        if declined is not None and time.monotonic() - declined < self._heartbeat_s:
            return
        hold_id = "rsv_" + secrets.token_hex(12)
        # twice the last request's hold: the next one (another prompt, another max_tokens)
        # still fits when it costs up to twice as much
        terms = dataclasses.replace(terms, request_id=hold_id, hold=terms.hold * 2)
        keys, args = self._admit_call(terms, reserve=True)
        future = self._batch.queue(self._admit, keys, args)
        self._reserving[key_id] = future
        future.add_done_callback(lambda answer: self._reserved_answer(terms, answer))

    def _reserved_answer(self, terms: AdmitRequest, answer: asyncio.Future[Any]) -> None:
        self._reserving.pop(terms.key_id, None)
        if answer.cancelled() or answer.exception() is not None:
            return  # the next release asks again; a failing store is reported by admissions
        outcome, _retry, remaining, reset_ms, available, epoch = answer.result()
        if outcome == "admitted":
            limit = LimitDecision(True, 0, 0, int(remaining), int(reset_ms))
            reservation = _Reservation(
                terms.request_id, terms, limit, int(available), str(epoch), time.monotonic()
            )
            if self._closing:
                self._unreserve(reservation)
            else:
                self._reserved[terms.key_id] = reservation
        elif outcome not in ("no_epoch", "recovering", "seed_account", "seed_key"):
            self._declined[terms.key_id] = time.monotonic()

    def _unreserve(self, reservation: _Reservation) -> None:
        """Give an unused reservation back: its slot, its hold and its rate allowance."""
        terms = reservation.terms
        keys = [*self._release_keys(reservation.hold_id, terms), self._k("rl", terms.key_id)]
        args: list[str | int] = [
            reservation.hold_id,
            0,
            0,
            terms.key_id,
            terms.month,
            terms.rate.interval_ms,
        ]
        self._batch.queue(self._release, keys, args).add_done_callback(_retrieve)

    def _lapse_reservations(self) -> None:
        """Return the reservations no request used for a heartbeat."""
        now = time.monotonic()
        for key_id, reservation in list(self._reserved.items()):
            if now - reservation.made >= self._heartbeat_s:
                del self._reserved[key_id]
                self._unreserve(reservation)
        for key_id, when in list(self._declined.items()):
            if now - when >= self._heartbeat_s:
                del self._declined[key_id]

    async def _establish_epoch(self) -> None:
        """Redis has no epoch: fresh (no pause) or emptied by a restart (pause to recover)."""
        known = await self._read_epoch()
        fresh = secrets.token_hex(8)
        recovery_ms = int(self._heartbeat_s * 3000) if known else 0
        async with Translated():
            epoch = await self._epoch(keys=[self._k("epoch")], args=[fresh, recovery_ms])
        epoch = str(epoch)
        if epoch == fresh:
            if known:
                log.warning("Redis lost its data: admission pauses while leases are restored")
            await self._write_epoch(fresh)
        self.epoch = epoch

    async def release(self, request_id: str, charge: int, version: int | None) -> None:
        live = self._live.pop(request_id, None)
        if live is None:
            return
        terms = live.terms
        keys = self._release_keys(live.hold_id, terms)
        # Shielded: a request cancelled now (its client left after receiving the answer)
        # must still free its slot and hold, and apply its charge to the cached balance.
        args: list[str | int] = [live.hold_id, charge, version or 0, terms.key_id, terms.month]
        await asyncio.shield(self._release_now(keys, args))
        if self._reserve_ahead and not self._closing:
            # After the release, not with it: a keep-alive connection's next request waits
            # for this release, and would wait for the reservation's script too.
            self._reserve_next(terms)

    def _release_keys(self, hold_id: str, terms: AdmitRequest) -> list[str]:
        """``release.lua``'s keys for the hold ``hold_id`` taken on ``terms``."""
        return [
            self._k("hold", hold_id),
            self._k("cc", terms.key_id),
            self._k("acct", terms.account_id),
            self._k("holds", terms.account_id),
            self._k("recent", terms.account_id),
            self._k("spend", terms.key_id, terms.month),
        ]

    async def _release_now(self, keys: list[str], args: list[str | int]) -> None:
        await self._batch.call(self._release, keys, args)

    async def seed_account(self, account_id: str, balance: int, version: int) -> None:
        keys = [
            self._k("acct", account_id),
            self._k("recent", account_id),
            self._k("holds", account_id),
        ]
        async with Translated():
            await self._seed_account(keys=keys, args=[balance, version, self._prefix])

    async def seed_key_spend(
        self, key_id: str, account_id: str, month: int, spent: int, version: int
    ) -> None:
        keys = [
            self._k("spend", key_id, month),
            self._k("recent", account_id),
            self._k("holds", account_id),
        ]
        async with Translated():
            await self._seed_key(keys=keys, args=[spent, version, key_id, month, self._prefix])

    async def forget_account(self, account_id: str) -> None:
        """After a grant or adjustment: drop the cached balance; the next admission re-seeds
        it (pending holds are recomputed from the live holds)."""
        async with Translated():
            await self._redis.delete(self._k("acct", account_id))

    async def open_holds(self, account_id: str) -> int:
        """From the holds themselves: a forgotten (to be re-seeded) balance still has them."""
        async with Translated():
            request_ids = await self._redis.zrange(self._k("holds", account_id), 0, -1)
            if not request_ids:
                return 0
            amounts = await asyncio.gather(
                *(self._redis.hget(self._k("hold", str(rid)), "amount") for rid in request_ids)
            )
        return sum(int(a) for a in amounts if a is not None)

    async def sweep(self) -> int:
        """Expiry happens inside the admit script (per account) and by key TTLs."""
        return 0

    async def heartbeat(self) -> int:
        """Extend (or re-create) this replica's live leases and holds; returns how many holds
        had to be re-created because Redis lost them."""
        async with Translated():
            epoch = await self._redis.get(self._k("epoch"))
        if epoch is None:
            await self._establish_epoch()
        elif self.epoch is not None and epoch != self.epoch:
            log.warning("Redis epoch changed: restoring this replica's leases and holds")
            self.epoch = str(epoch)
        # Every batch of the refresh is queued at once, on the admission connection, in the
        # step that reads the live requests: a request released after this reading is
        # released after its refresh.  (Sent later or on another connection, a refresh could
        # run after the release and re-create the hold it had just freed.)
        self._lapse_reservations()
        live = [e.refresh for e in self._live.values()] + [
            _Live(r.hold_id, r.terms.hold, r.terms).refresh for r in self._reserved.values()
        ]
        refreshes = []
        for start in range(0, len(live), 200):
            args: list[str | int] = [self._prefix, self._lease_ms]
            for entry in live[start : start + 200]:
                args += entry
            refreshes.append(self._batch.queue(self._refresh, [], args))
        restored = 0
        for refresh in refreshes:
            restored += int(await refresh)
        return restored

    async def run_heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_s)
            try:
                await self.heartbeat()
            except StoreUnavailableError:
                log.warning("Redis heartbeat failed")

    async def ping(self) -> None:
        async with Translated():
            await self._redis.ping()

    async def drain(self) -> None:
        await self._batch.drain(self._lease_ms / 1000)

    async def close(self) -> None:
        self._closing = True
        for reservation in self._reserved.values():
            self._unreserve(reservation)
        self._reserved.clear()
        await self._batch.close()
        await self._redis.aclose(close_connection_pool=True)


def _retrieve(future: asyncio.Future[Any]) -> None:
    """A call nobody awaits: its failure is only a lapse later (the lease TTL)."""
    if not future.cancelled():
        future.exception()

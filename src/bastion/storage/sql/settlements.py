"""Group commit of settlements: many requests' charges become durable in one transaction.

A request awaits :meth:`SqlSettlementWriter.charge` before its last byte leaves, so a crash can
never lose the charge of a response the client received in full.  While one transaction is
being committed, new charges queue up and go together in the next one, so the cost of a
commit (an fsync on SQLite) is shared by every request that finished meanwhile.

Request-log rows (the per-request usage history) ride along with whatever batch comes next;
nobody waits for them, and they do not start a transaction of their own unless no charge comes
within ``LOG_DELAY_S``: at a low rate a request's row goes with the next request's charge, one
commit per request instead of two.

A PostgreSQL batch whose COMMIT got no reply is *in doubt*: before its requests are answered,
the writer asks the store whether it landed (see :mod:`bastion.storage.sql.in_doubt`), for up
to ``doubt_wait_s``; past that its clients get 503 and any of its charges that did land is
refunded once the store answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass, field

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.core.delivery import Delivery
from bastion.core.records import Charge, RequestLogEntry
from bastion.errors import StoreUnavailableError
from bastion.storage.sql.batches import DuplicateChargeError
from bastion.storage.sql.engine import translated_errors
from bastion.storage.sql.in_doubt import (
    CommitInDoubtError,
    DoubtfulBatch,
    committed_versions,
    void,
)
from bastion.storage.sql.pg_batch import PgBatchWriter
from bastion.storage.sql.sqlite_batch import SqliteBatchWriter
from bastion.storage.sql.tables import request_log

log = logging.getLogger("bastion.settlement")

MAX_PENDING_LOGS = 100_000
PROBE_INTERVAL_S = 0.5
DOUBT_WAIT_S = 5.0
"""How long the clients of an in-doubt batch wait for the store to say whether it landed."""
LOG_DELAY_S = 0.5
"""How long usage-history rows wait for a charge to ride with before they are written alone."""


@dataclass(slots=True)
class _Pending:
    charge: Charge
    delivery: Delivery | None = None
    done: asyncio.Future[int | None] = field(default_factory=asyncio.Future)
    retried: bool = False

    def fail(self, exc: BaseException) -> None:
        if self.delivery is not None:
            self.delivery.discard()
        if not self.done.done():
            self.done.set_exception(exc)


class SqlSettlementWriter:
    def __init__(
        self,
        engine: AsyncEngine,
        batches: SqliteBatchWriter | PgBatchWriter,
        *,
        batch_max: int = 512,
        store_timeout_s: float = 0.5,
        doubt_wait_s: float = DOUBT_WAIT_S,
    ) -> None:
        self._engine = engine
        self.batch_writer = batches
        self._lock_timeout_ms = max(1, int(store_timeout_s * 1000))
        self.doubt_wait_s = doubt_wait_s
        """How long the clients of an in-doubt batch wait for the store's word."""
        self._doubtful: list[DoubtfulBatch] = []
        self._batch_max = batch_max
        self._charges: deque[_Pending] = deque()
        self._logs: deque[RequestLogEntry] = deque(maxlen=MAX_PENDING_LOGS)
        self._wakeup = asyncio.Event()
        self._log_timer: asyncio.TimerHandle | None = None
        """Pending while usage rows wait for a charge to ride with (see ``log``)."""
        self._flushing = 0
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.batches = 0
        self.charges_written = 0
        self.logs_dropped = 0
        self._writing = False
        self.voided = 0
        self.failing = False
        """True from a failed write until the store answers again (and every batch left in
        doubt is settled): admission refuses (503) meanwhile, so no request is served whose
        charge could not be written."""

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="bastion-group-commit")

    async def close(self) -> None:
        """Write everything queued, then stop."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._log_timer is not None:
            self._log_timer.cancel()
            self._log_timer = None
        await self.batch_writer.close()

    def enqueue(
        self, charge: Charge, delivery: Delivery | None = None
    ) -> asyncio.Future[int | None]:
        """Queue a charge for the next group commit; the future gives the account's ledger
        version after it (None if an identical charge was already recorded), or raises
        StoreUnavailableError if it could not be written.  The bytes handed to ``delivery``
        are sent right after the commit, before the future resolves."""
        pending = _Pending(charge, delivery)
        if delivery is not None:
            delivery.from_thread = self.batch_writer.commits_in_thread
        if self._closing and self._task is None:
            pending.fail(StoreUnavailableError("the gateway is shutting down"))
            return pending.done
        self._charges.append(pending)
        self._wakeup.set()
        return pending.done

    async def charge(self, charge: Charge) -> int | None:
        """Durably record a charge (see :meth:`enqueue`)."""
        # Shielded: a caller that goes away must not un-write a charge already in flight.
        return await asyncio.shield(self.enqueue(charge))

    def log(self, entry: RequestLogEntry) -> None:
        if len(self._logs) == self._logs.maxlen:
            self.logs_dropped += 1
        self._logs.append(entry)
        if len(self._logs) >= self._batch_max:
            self._wakeup.set()  # a full batch goes at once
        elif self._log_timer is None:
            self._log_timer = asyncio.get_running_loop().call_later(LOG_DELAY_S, self._logs_due)

    def _logs_due(self) -> None:
        self._log_timer = None
        self._wakeup.set()

    def _logs_can_wait(self) -> bool:
        """Usage rows alone wait for a charge to ride with, until their timer wakes the
        writer (or a flush, the shutdown or a failing store asks for them at once)."""
        return (
            self._log_timer is not None
            and not self._flushing
            and not self._closing
            and not self.failing
            and len(self._logs) < self._batch_max
        )

    async def flush(self) -> None:
        """Wait until everything queued so far is written (used by tests and shutdown)."""
        self._flushing += 1
        try:
            while self._charges or self._logs or self._writing:
                self._wakeup.set()
                await asyncio.sleep(0.005)
        finally:
            self._flushing -= 1

    async def _run(self) -> None:
        while True:
            if not self._charges and (not self._logs or self._logs_can_wait()):
                if self._closing:
                    return
                self._wakeup.clear()
                if not self.failing:
                    await self._wakeup.wait()
                    continue
                # The store failed: nothing may be admitted until it answers again, so probe
                # it here rather than wait for a charge that cannot come.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(PROBE_INTERVAL_S):
                        await self._wakeup.wait()
                        continue
                await self._probe()
                continue
            batch = [
                self._charges.popleft() for _ in range(min(self._batch_max, len(self._charges)))
            ]
            logs = [self._logs.popleft() for _ in range(min(self._batch_max, len(self._logs)))]
            self._writing = True
            try:
                versions = await self._write(batch, logs)
            except DuplicateChargeError:
                versions = await self._write_one_by_one(batch, logs)
            except CommitInDoubtError as exc:
                self.failing = True
                landed = await self._resolve(batch)
                if landed is None:  # still unknown: its clients get 503, a landed charge is voided
                    log.warning("a settlement commit is in doubt; its charges will be voided")
                    self._doubtful.append(DoubtfulBatch([p.charge for p in batch]))
                if not landed:
                    # Known not written (the store answers): written again, once.
                    again: list[_Pending] = []
                    for item in batch:
                        if landed is not None and not item.retried:
                            item.retried = True
                            again.append(item)
                        else:
                            item.fail(exc)
                    self._charges.extendleft(reversed(again))
                    # Rows that did land make the retry hit the unique index: skipped there.
                    self._logs.extendleft(reversed(logs))
                    self._writing = False
                    continue
                versions = landed
            except StoreUnavailableError as exc:
                self.failing = True
                for item in batch:
                    item.fail(exc)
                # Keep the usage history; retry it after a pause instead of losing it.
                self._logs.extendleft(reversed(logs))
                self._writing = False
                await asyncio.sleep(0.2)
                continue
            except Exception:  # a bug must not leave requests waiting forever
                log.exception("settlement batch failed")
                for item in batch:
                    item.fail(StoreUnavailableError())
                self._writing = False
                continue
            self._writing = False
            self.batches += 1
            self.charges_written += len(batch)
            # The answers' last bytes first, in this same step: no other task runs between
            # the commit and their leaving (see bastion.core.delivery).
            for item in batch:
                if item.delivery is not None:
                    item.delivery.complete()
            for item in batch:
                if not item.done.done():
                    item.done.set_result(versions.get(item.charge.request_id))
            if self._doubtful:  # the store answers again: settle what was left in doubt
                await self._settle_doubts()
            self.failing = bool(self._doubtful)

    async def _probe(self) -> None:
        try:
            async with translated_errors(), self._engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except StoreUnavailableError:
            return
        await self._settle_doubts()
        if not self._doubtful:
            self.failing = False
            log.warning("the store of record answers again")

    async def _resolve(self, batch: list[_Pending]) -> dict[str, int | None] | None:
        """Whether an in-doubt batch landed: its versions if it did, {} if it did not, None
        if the store did not say within ``doubt_wait_s``."""
        charges = [p.charge for p in batch]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.doubt_wait_s
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    return await committed_versions(
                        self._engine, charges, lock_timeout_ms=self._lock_timeout_ms
                    )
            except (StoreUnavailableError, TimeoutError):
                pass
            except Exception:  # a bug must not stop the writer: treated as still unknown
                log.exception("could not ask the store whether a batch landed")
                return None
            if loop.time() + PROBE_INTERVAL_S >= deadline:
                return None
            await asyncio.sleep(PROBE_INTERVAL_S)

    async def _settle_doubts(self) -> None:
        """Void what landed of the batches whose clients were answered 503 (oldest first);
        stops at the first the store cannot settle yet."""
        while self._doubtful:
            try:
                async with asyncio.timeout(self.doubt_wait_s):
                    refunded = await void(
                        self._engine, self._doubtful[0], lock_timeout_ms=self._lock_timeout_ms
                    )
            except (StoreUnavailableError, TimeoutError):
                return
            except Exception:
                # A bug must not keep admission closed for good: give the batch up, loudly,
                # with what an operator needs to refund by hand (request ids are not secret).
                log.exception(
                    "could not settle a batch whose commit was in doubt; refund any of these "
                    "requests found charged: %s",
                    " ".join(c.request_id for c in self._doubtful[0].charges),
                )
                refunded = 0
            self._doubtful.pop(0)
            self.voided += refunded
            if refunded:
                log.warning("voided %d charges whose commit was in doubt", refunded)

    async def _write(
        self, batch: list[_Pending], logs: list[RequestLogEntry]
    ) -> dict[str, int | None]:
        return await self.batch_writer.write(
            [p.charge for p in batch],
            logs,
            [p.delivery for p in batch if p.delivery is not None],
        )

    async def _write_one_by_one(
        self, batch: list[_Pending], logs: list[RequestLogEntry]
    ) -> dict[str, int | None]:
        """A batch hit a unique constraint: write items alone, skipping the duplicates."""
        versions: dict[str, int | None] = {}
        for item in batch:
            try:
                versions.update(await self._write([item], []))
            except DuplicateChargeError:
                versions[item.charge.request_id] = None
            except CommitInDoubtError as exc:
                self.failing = True
                self._doubtful.append(DoubtfulBatch([item.charge]))
                item.fail(exc)
            except StoreUnavailableError as exc:
                item.fail(exc)
        for entry in logs:
            with contextlib.suppress(DuplicateChargeError, StoreUnavailableError):
                await self._write([], [entry])
        return versions


async def recent_requests(
    engine: AsyncEngine, account_id: str, limit: int = 50
) -> list[dict[str, object]]:
    async with translated_errors(), engine.connect() as conn:
        rows = (
            await conn.execute(
                select(request_log)
                .where(request_log.c.account_id == account_id)
                .order_by(request_log.c.created_ms.desc())
                .limit(limit)
            )
        ).all()
    return [dict(r._mapping) for r in rows]

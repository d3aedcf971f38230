"""The settlement batch on SQLite, written with the standard library's driver.

The group commit is the one SQL write on the hot path.  On SQLite it runs here: one
connection executes a whole batch (balances, ledger rows, usage history) with C-level
parameter binding and one commit — inline on the event loop when that cannot block (see
:class:`SqliteBatchWriter`), in one writer thread otherwise — with no per-row SQL building
and no SQLAlchemy layers.  Measured by the benchmark (docs/performance.md).
The statements mirror ``tables.py``; the contract suites run both writers on the same data.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bastion.core.calendar import day_of, month_of
from bastion.core.delivery import Delivery
from bastion.core.records import Charge, RequestLogEntry
from bastion.errors import StoreUnavailableError
from bastion.storage.sql.batches import DuplicateChargeError, by_account, number

log = logging.getLogger("bastion.settlement")

WRITER_WAIT_MS = 30_000
CHECKPOINT_WAIT_MS = 200
WAL_SIZE_LIMIT = 64 * 1024 * 1024

MOVE_BALANCE = (
    "UPDATE accounts SET balance = balance - ?, version = version + ? WHERE id = ? "
    "RETURNING version"
)
INSERT_CHARGE = (
    "INSERT INTO ledger (account_id, key_id, request_id, kind, amount, model, endpoint, usage, "
    "actor, reason, created_ms, day, month) VALUES (?, ?, ?, 'charge', ?, ?, ?, ?, NULL, NULL, "
    "?, ?, ?)"
)
INSERT_LOG = (
    "INSERT INTO request_log (request_id, account_id, key_id, model, endpoint, status, usage, "
    "cost, duration_ms, created_ms, day) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class SqliteBatchWriter:
    """Writes settlement batches to SQLite.

    With ``synchronous`` NORMAL (the default) a commit does not wait for the disk, so a batch
    takes tens of microseconds: it runs inline on the event loop, where handing it to a
    thread would cost more (a thread wake-up and two GIL hand-overs per batch, each waiting
    for the loop to let go) and every answer waits on it.  Anything that could block runs
    in the writer thread instead: a batch that finds the database locked by another writer
    (the CLI, the dashboard) is retried there with the full busy timeout, and with FULL,
    whose commits wait for an fsync, every batch runs there.  Neither connection checkpoints
    the WAL (a checkpoint syncs the file): a third one does, on a thread of its own, beside
    the batches (see ``_copy_back``).
    """

    CHECKPOINT_EVERY = 500
    """Batches between two checkpoints of the write-ahead log (on their own connection)."""

    RESTART_FRAMES = 8192
    """Length of the log (pages; 32 MB at 4 KB) past which a checkpoint also starts it over."""

    @property
    def commits_in_thread(self) -> bool:
        """Every batch commits in the writer thread (FULL): answers can leave from there."""
        return not self._inline_ok

    def __init__(self, path: str, synchronous: str) -> None:
        self._path = path
        self._synchronous = synchronous
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="bastion-sqlite-writer")
        self._conn: sqlite3.Connection | None = None
        # Checkpoints have a thread and a connection of their own: with FULL, the writer
        # thread's batches go on while the log is copied back
        self._checkpointer = ThreadPoolExecutor(1, thread_name_prefix="bastion-sqlite-checkpoint")
        self._ck: sqlite3.Connection | None = None
        self._inline_ok = synchronous.upper() in ("NORMAL", "OFF")
        self._inline: sqlite3.Connection | None = None
        self._since_checkpoint = 0
        self._checkpointing = False
        self._restarted = asyncio.Event()
        """Set except while the log restarts (batches wait for it)."""
        self._restarted.set()
        self._fresh_log = False
        """The log was copied back whole or restarted: the next commit starts it over."""
        self.inline_batches = 0
        self.thread_batches = 0
        self.checkpoints = 0

    @property
    def _restarting(self) -> bool:
        return not self._restarted.is_set()

    async def write(
        self,
        charges: list[Charge],
        logs: list[RequestLogEntry],
        deliveries: list[Delivery] | None = None,
    ) -> dict[str, int | None]:
        """Write a batch in one transaction; right after its COMMIT, send the bytes handed
        to ``deliveries`` (see bastion.core.delivery)."""
        if self._restarting:
            # The log is starting over, which takes the write lock for its syncs (a few ms):
            # the batch waits here, on the loop, and goes the moment it is done.  Sent to the
            # writer thread instead, each batch raced the restart for the lock, sleeping
            # SQLite's busy steps (1, 2, 5, 10 ms…) between tries, and kept it waiting: at
            # 200 req/s restarts took up to 140 ms and their batches 5–60 ms.
            await self._restarted.wait()
        if self._inline_ok and not self._fresh_log:
            try:
                versions = self._write_inline(charges, logs)
            except _LockedError:
                pass  # another writer holds the database: wait for it in the thread
            else:
                # the answers leave in this same event-loop step (the caller's Delivery.complete)
                self.inline_batches += 1
                self._checkpoint_soon()
                return versions
        # (the first commit into a log that starts over writes its header and syncs it:
        # in the thread, not on the loop)
        self._fresh_log = False
        loop = asyncio.get_running_loop()
        versions = await loop.run_in_executor(
            self._thread, self._write, charges, logs, deliveries or []
        )
        self.thread_batches += 1
        self._checkpoint_soon()
        return versions

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        if self._inline is not None:
            self._inline.close()
            self._inline = None
        await loop.run_in_executor(self._thread, self._close)
        self._thread.shutdown(wait=True)
        await loop.run_in_executor(self._checkpointer, self._close_checkpointer)
        self._checkpointer.shutdown(wait=True)

    # -- on the event loop -----------------------------------------------------------------

    def _write_inline(
        self, charges: list[Charge], logs: list[RequestLogEntry]
    ) -> dict[str, int | None]:
        try:
            if self._inline is None:
                conn = _open(self._path, self._synchronous, busy_timeout_ms=0)
                conn.execute("PRAGMA wal_autocheckpoint=0")
                self._inline = conn
            self._inline.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if _is_locked(exc):
                raise _LockedError() from exc
            self._close_inline()
            raise StoreUnavailableError() from exc
        except sqlite3.Error as exc:
            self._close_inline()
            raise StoreUnavailableError() from exc
        return _transaction(self._inline, charges, logs, self._close_inline)

    def _close_inline(self) -> None:
        if self._inline is not None:
            self._inline.close()
            self._inline = None

    def _checkpoint_soon(self) -> None:
        self._since_checkpoint += 1
        if self._since_checkpoint < self.CHECKPOINT_EVERY or self._checkpointing:
            return
        self._since_checkpoint = 0
        self._checkpointing = True
        future = asyncio.get_running_loop().run_in_executor(self._checkpointer, self._copy_back)
        future.add_done_callback(self._copied_back)

    def _copied_back(self, future: asyncio.Future[tuple[int, int]]) -> None:
        if future.cancelled() or future.exception() is not None:
            self._checkpointed(future)  # failed: reported there
            return
        frames, copied = future.result()
        if frames < self.RESTART_FRAMES:
            self._fresh_log = 0 < copied == frames
            self._checkpointed(future)
            return
        # The log is long: what commits added while the pages were copied is copied now,
        # with writers held back for that short while, and the log starts over.
        self._restarted.clear()
        restart = asyncio.get_running_loop().run_in_executor(self._checkpointer, self._restart)
        restart.add_done_callback(self._checkpointed)

    def _checkpointed(self, future: asyncio.Future[Any]) -> None:
        failure = None if future.cancelled() else future.exception()
        if self._restarting and not future.cancelled() and failure is None:
            self._fresh_log = True
        self._checkpointing = False
        self._restarted.set()
        self.checkpoints += 1
        if failure is not None:
            log.warning("WAL checkpoint failed: %s", failure)

    # -- in the writer thread --------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = _open(self._path, self._synchronous, busy_timeout_ms=WRITER_WAIT_MS)
            # no checkpoint inside a batch's commit, its answers waiting: see _copy_back
            conn.execute("PRAGMA wal_autocheckpoint=0")
            self._conn = conn
        return self._conn

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- in the checkpoint thread ----------------------------------------------------------

    def _checkpoint_connection(self) -> sqlite3.Connection:
        if self._ck is None:
            self._ck = _open(self._path, self._synchronous, busy_timeout_ms=WRITER_WAIT_MS)
        return self._ck

    def _close_checkpointer(self) -> None:
        if self._ck is not None:
            self._ck.close()
            self._ck = None

    def _copy_back(self) -> tuple[int, int]:
        """Copy the log's pages into the database file and sync it, beside the inline
        writers (PASSIVE waits for no one); the log's length and the part copied, in pages.
        When the whole log was copied and nothing came meanwhile, the next commit starts it
        over by itself."""
        try:
            conn = self._checkpoint_connection()
            _busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error:
            self._close_checkpointer()  # the next checkpoint starts on a fresh connection
            raise
        return int(frames), int(copied)

    def _restart(self) -> None:
        # RESTART waits for writers: under a steady stream of commits, passive checkpoints
        # alone never catch up with the log, which then never starts over and grows without
        # bound (measured: 450 MB in 30 s at saturation).  After the passive pass only the
        # pages of the commits made during it are left, so the loop's batches queue behind
        # this (see write) for its two syncs only (~5 ms on a slow disk), not for the copy
        # and sync of the whole log (~35 ms: it put ~20 ms on the p99 at 200 req/s when
        # every checkpoint held the commits), and only once per RESTART_FRAMES of log.  A
        # reader in the way is waited for briefly only: the checkpoint is tried again later.
        try:
            conn = self._checkpoint_connection()
            conn.execute(f"PRAGMA busy_timeout={CHECKPOINT_WAIT_MS}")
            conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
            conn.execute(f"PRAGMA busy_timeout={WRITER_WAIT_MS}")
        except sqlite3.Error:
            self._close_checkpointer()  # the next checkpoint starts on a fresh connection
            raise

    def _write(
        self, charges: list[Charge], logs: list[RequestLogEntry], deliveries: list[Delivery]
    ) -> dict[str, int | None]:
        try:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            self._close()
            raise StoreUnavailableError() from exc
        versions = _transaction(conn, charges, logs, self._close)
        for delivery in deliveries:
            delivery.send_now()
        return versions


class _LockedError(Exception):
    """The database is locked by another writer (the inline attempt does not wait)."""


def _is_locked(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)  # extended codes keep the primary's low byte
    return code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _open(path: str, synchronous: str, *, busy_timeout_ms: int) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout_ms / 1000)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    # Once the log starts over, its file is cut back to this size (it is reused, not grown).
    conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
    return conn


def _transaction(
    conn: sqlite3.Connection,
    charges: list[Charge],
    logs: list[RequestLogEntry],
    on_broken: Callable[[], None],
) -> dict[str, int | None]:
    """The body of a batch after BEGIN IMMEDIATE: statements, then COMMIT or ROLLBACK."""
    try:
        versions = _write_charges(conn, charges)
        if logs:
            conn.executemany(
                INSERT_LOG,
                [
                    (
                        e.request_id,
                        e.account_id,
                        e.key_id,
                        e.model,
                        e.endpoint,
                        e.status,
                        e.usage,
                        e.cost,
                        e.duration_ms,
                        e.created_ms,
                        day_of(e.created_ms),
                    )
                    for e in logs
                ],
            )
        conn.execute("COMMIT")
    except sqlite3.IntegrityError as exc:
        conn.execute("ROLLBACK")
        raise DuplicateChargeError() from exc
    except sqlite3.Error as exc:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            on_broken()
        raise StoreUnavailableError() from exc
    return versions


def _write_charges(conn: sqlite3.Connection, charges: list[Charge]) -> dict[str, int | None]:
    if not charges:
        return {}
    versions: dict[str, int | None] = {}
    for account_id, items in by_account(charges):
        row = conn.execute(
            MOVE_BALANCE, (sum(c.amount for c in items), len(items), account_id)
        ).fetchone()
        if row is None:
            raise sqlite3.IntegrityError(f"charge for a missing account {account_id}")
        number(items, int(row[0]), versions)
    conn.executemany(
        INSERT_CHARGE,
        [
            (
                c.account_id,
                c.key_id,
                c.request_id,
                -c.amount,
                c.model,
                c.endpoint,
                c.usage,
                c.created_ms,
                day_of(c.created_ms),
                month_of(c.created_ms),
            )
            for c in charges
        ],
    )
    return versions

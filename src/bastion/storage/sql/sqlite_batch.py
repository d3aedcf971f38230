"""The settlement batch on SQLite, written with the standard library's driver in one thread.

The group commit is the one SQL write on the hot path.  On SQLite it runs here: a single
thread owning one connection executes a whole batch (balances, ledger rows, usage history)
with C-level parameter binding and one commit — one thread hop per batch instead of one per
statement, and no per-row SQL building.  Measured by the benchmark (docs/performance.md).
The statements mirror ``tables.py``; the contract suites run both writers on the same data.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

from bastion.core.calendar import day_of, month_of
from bastion.core.delivery import Delivery
from bastion.core.records import Charge, RequestLogEntry
from bastion.errors import StoreUnavailableError

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


class DuplicateChargeError(Exception):
    """A row of the batch broke a unique constraint (a request id written before)."""


class SqliteBatchWriter:
    def __init__(self, path: str, synchronous: str) -> None:
        self._path = path
        self._synchronous = synchronous
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="bastion-sqlite-writer")
        self._conn: sqlite3.Connection | None = None

    async def write(
        self,
        charges: list[Charge],
        logs: list[RequestLogEntry],
        deliveries: list[Delivery] | None = None,
    ) -> dict[str, int | None]:
        """Write a batch in one transaction; right after its COMMIT, still in the writer
        thread, send the bytes handed to ``deliveries`` (see bastion.core.delivery)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._thread, self._write, charges, logs, deliveries or []
        )

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self._close)
        self._thread.shutdown(wait=True)

    # -- in the writer thread --------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            self._conn = conn
        return self._conn

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _write(
        self, charges: list[Charge], logs: list[RequestLogEntry], deliveries: list[Delivery]
    ) -> dict[str, int | None]:
        try:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            self._close()
            raise StoreUnavailableError() from exc
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
                self._close()
            raise StoreUnavailableError() from exc
        for delivery in deliveries:
            delivery.send_now()
        return versions


def _write_charges(conn: sqlite3.Connection, charges: list[Charge]) -> dict[str, int | None]:
    if not charges:
        return {}
    by_account: dict[str, list[Charge]] = defaultdict(list)
    for charge in charges:
        by_account[charge.account_id].append(charge)
    versions: dict[str, int | None] = {}
    for account_id in sorted(by_account):
        items = by_account[account_id]
        row = conn.execute(
            MOVE_BALANCE, (sum(c.amount for c in items), len(items), account_id)
        ).fetchone()
        if row is None:
            raise sqlite3.IntegrityError(f"charge for a missing account {account_id}")
        end = int(row[0])
        for index, item in enumerate(items):
            versions[item.request_id] = end - len(items) + index + 1
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

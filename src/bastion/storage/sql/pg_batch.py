"""The settlement batch on PostgreSQL, written with asyncpg on a connection of its own.

A batch is one statement, ``SELECT … FROM bastion_settle($1, $2)`` (migration 0004), run
outside an explicit transaction: PostgreSQL commits it before it replies, so a batch costs
one round trip and one WAL flush.  Through SQLAlchemy the same batch took six round trips
(pool ping, BEGIN, the balance update, two inserts, COMMIT): 2.65 ms against 0.79 ms here
at p50 for a one-charge batch (docs/performance.md).

What a failure means for the money is decided here, where it is known:

- no connection could be made, or the server refused the statement with an error: nothing
  was written (:class:`StoreUnavailableError`);
- a row broke a unique constraint: nothing was written (:class:`DuplicateChargeError`);
- the statement was sent and then the link broke, or no reply came in time: it may have
  committed (:class:`CommitInDoubtError`; the writer asks the store before answering).
"""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson

from bastion.core.calendar import day_of, month_of
from bastion.core.delivery import Delivery
from bastion.core.records import Charge, RequestLogEntry
from bastion.errors import StoreUnavailableError
from bastion.storage.sql.batches import DuplicateChargeError, by_account, number
from bastion.storage.sql.in_doubt import CommitInDoubtError

SETTLE = "SELECT settled_account, settled_version FROM bastion_settle($1::jsonb, $2::jsonb)"


def asyncpg_dsn(url: str) -> str:
    """The libpq form of a configured PostgreSQL URL (SQLAlchemy's driver suffix removed)."""
    scheme, _, rest = url.partition("://")
    return "postgresql://" + rest if scheme.startswith("postgres") else url


class PgBatchWriter:
    def __init__(self, url: str, *, timeout_s: float) -> None:
        self._dsn = asyncpg_dsn(url)
        self._timeout = timeout_s
        self._conn: asyncpg.Connection[Any] | None = None

    commits_in_thread = False
    """Answers leave from the event loop, in the step that reads the commit's reply."""

    async def write(
        self,
        charges: list[Charge],
        logs: list[RequestLogEntry],
        deliveries: list[Delivery] | None = None,
    ) -> dict[str, int | None]:
        """Write a batch in one statement (committed with its reply).  ``deliveries`` are
        sent by the caller, in the same event-loop step."""
        del deliveries
        conn = await self._connection()
        try:
            rows = await conn.fetch(
                SETTLE, charges_json(charges), logs_json(logs), timeout=self._timeout
            )
        except (asyncpg.UniqueViolationError, asyncpg.ForeignKeyViolationError) as exc:
            raise DuplicateChargeError() from exc
        except (
            OSError,
            TimeoutError,
            asyncpg.InterfaceError,
            asyncpg.PostgresConnectionError,  # the link broke mid-statement
            asyncpg.exceptions.OperatorInterventionError,  # shutdown, a terminated session
        ) as exc:
            await self._drop()
            if charges:
                raise CommitInDoubtError() from exc
            raise StoreUnavailableError() from exc
        except asyncpg.PostgresError as exc:
            # The server refused the statement (read-only, disk full…): it was rolled back.
            await self._drop()
            raise StoreUnavailableError() from exc
        ends = {str(r[0]): int(r[1]) for r in rows}
        versions: dict[str, int | None] = {}
        for account_id, items in by_account(charges):
            number(items, ends[account_id], versions)
        return versions

    async def close(self) -> None:
        await self._drop()

    async def _connection(self) -> asyncpg.Connection[Any]:
        if self._conn is not None and not self._conn.is_closed():
            return self._conn
        try:
            self._conn = await asyncpg.connect(self._dsn, timeout=self._timeout)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreUnavailableError() from exc
        return self._conn

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()  # no goodbye over a link that may be dead


def charges_json(charges: list[Charge]) -> str:
    return orjson.dumps(
        [
            {
                "account_id": c.account_id,
                "key_id": c.key_id,
                "request_id": c.request_id,
                "amount": c.amount,
                "model": c.model,
                "endpoint": c.endpoint,
                "usage": c.usage,
                "created_ms": c.created_ms,
                "day": day_of(c.created_ms),
                "month": month_of(c.created_ms),
            }
            for c in charges
        ]
    ).decode()


def logs_json(logs: list[RequestLogEntry]) -> str:
    return orjson.dumps(
        [
            {
                "request_id": e.request_id,
                "account_id": e.account_id,
                "key_id": e.key_id,
                "model": e.model,
                "endpoint": e.endpoint,
                "status": e.status,
                "usage": e.usage,
                "cost": e.cost,
                "duration_ms": e.duration_ms,
                "created_ms": e.created_ms,
                "day": day_of(e.created_ms),
            }
            for e in logs
        ]
    ).decode()

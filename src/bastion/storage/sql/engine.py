"""Engine creation and the one place driver errors become :class:`StoreUnavailableError`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bastion.errors import StoreUnavailableError
from bastion.settings import StorageSettings

AUTOCHECKPOINT_PAGES = 16_384
"""The write-ahead log's length (pages, 64 MB at 4 KB) past which a commit on these
connections checkpoints it: a safety net only.  The settlement writer checkpoints it on a
connection and thread of its own and starts it over past 8,192 pages; at SQLite's default
of 1,000 pages, a key-usage or dashboard write during traffic copied and synced the log in
its commit (30–200 ms measured at 200 req/s) while the settlement batches waited for the
database's lock."""


def async_url(url: str) -> str:
    """Pick the asyncio driver for a configured URL."""
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    if url.startswith("postgres://"):
        return "postgresql+asyncpg://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        return "postgresql+asyncpg://" + url[len("postgresql://") :]
    return url


def create_engine(storage: StorageSettings, *, pool_size: int = 10) -> AsyncEngine:
    url = async_url(storage.database_url)
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})
        synchronous = storage.sqlite_synchronous

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            # WAL lets readers run beside the writer; FULL makes a commit survive power loss.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
            cursor.close()

        return engine
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_timeout=storage.store_timeout_s * 4,
        connect_args={"timeout": max(1.0, storage.store_timeout_s * 4)},
    )


@asynccontextmanager
async def translated_errors() -> AsyncIterator[None]:
    """Driver faults and timeouts become :class:`StoreUnavailableError`; integrity errors and
    programming errors pass through (they are bugs or expected conflicts, not outages)."""
    try:
        yield
    except (OperationalError, PoolTimeoutError, TimeoutError, OSError) as exc:
        raise StoreUnavailableError() from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise StoreUnavailableError() from exc
        raise
    except asyncio.CancelledError:
        raise

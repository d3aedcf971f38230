"""Backends for the contract suites: each fixture yields a ready store of one role."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import pytest

from bastion.core.admission import AdmissionStore
from bastion.core.clock import FakeClock
from bastion.settings import StorageSettings
from bastion.storage.memory.admission import MemoryAdmission
from bastion.storage.redis.admission import RedisAdmission, connect
from bastion.storage.sql.database import Database

PG = "postgresql://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379"


def worker_number() -> int:
    name = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(name[2:]) if name.startswith("gw") and name[2:].isdigit() else 0


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A database of this test session and worker, dropped at the end."""
    name = f"bastion_test_{worker_number()}_{secrets.token_hex(4)}"

    async def admin(statement: str) -> None:
        conn = await asyncpg.connect(f"{PG}/postgres")
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    def run(statement: str) -> None:
        # in a thread of its own: the fixture may be first asked for inside a running loop
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, admin(statement)).result()

    run(f'CREATE DATABASE "{name}"')
    yield f"{PG}/{name}"
    run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class FakeEpochBook:
    def __init__(self) -> None:
        self.value: str | None = None

    async def read(self) -> str | None:
        return self.value

    async def write(self, epoch: str) -> None:
        self.value = epoch


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def admission(request: pytest.FixtureRequest) -> AsyncIterator[AdmissionStore]:
    if request.param == "memory":
        yield MemoryAdmission(clock=FakeClock())
        return
    book = FakeEpochBook()
    store = RedisAdmission(
        connect(f"{REDIS}/{1 + worker_number() % 15}", 0.5),
        prefix=f"bastion:test:{secrets.token_hex(6)}:",
        lease_ttl_s=0.6,
        heartbeat_s=0.2,
        read_epoch=book.read,
        write_epoch=book.write,
    )
    yield store
    await store.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'contract.db'}"
        storage = StorageSettings(database_url=url, sqlite_synchronous="NORMAL")
    else:
        url = request.getfixturevalue("pg_database")
        storage = StorageSettings(database_url=url, redis_url=REDIS)
    db = Database.open(storage)
    await db.migrate()
    db.settlements.start()
    yield db
    await db.close()

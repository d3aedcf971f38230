"""Backends for the contract suites: each fixture yields a ready store of one role."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bastion.core.admission import AdmissionStore
from bastion.core.clock import FakeClock
from bastion.settings import StorageSettings
from bastion.storage.memory.admission import MemoryAdmission
from bastion.storage.redis.admission import RedisAdmission, connect
from bastion.storage.sql.database import Database
from tests.support.services import REDIS, worker_number


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

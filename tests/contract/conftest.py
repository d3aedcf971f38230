"""Backends for the contract suites: each fixture yields a ready store of one role."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bastion.core.admission import AdmissionStore
from bastion.core.clock import FakeClock
from bastion.settings import StorageSettings
from bastion.storage.memory.admission import MemoryAdmission
from bastion.storage.sql.database import Database
from tests.contract.support import redis_admission
from tests.support.services import REDIS


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def admission(request: pytest.FixtureRequest) -> AsyncIterator[AdmissionStore]:
    if request.param == "memory":
        yield MemoryAdmission(clock=FakeClock())
        return
    store = redis_admission(timeout_s=0.5, lease_ttl_s=0.6, heartbeat_s=0.2)
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

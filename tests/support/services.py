"""The machine's PostgreSQL and Redis, shared safely: a database per test session and
worker, a Redis database number per worker and a key prefix per test."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import asyncpg
import pytest

PG = "postgresql://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379"


def worker_number() -> int:
    name = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(name[2:]) if name.startswith("gw") and name[2:].isdigit() else 0


def redis_url() -> str:
    return f"{REDIS}/{1 + worker_number() % 15}"


def redis_prefix() -> str:
    return f"bastion:test:{secrets.token_hex(6)}:"


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

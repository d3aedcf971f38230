"""The scaled-out topology: PostgreSQL as the store of record, Redis for admission."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from tests.support.services import REDIS, worker_number


@pytest.fixture
def config(pg_database: str) -> dict[str, Any]:
    return {
        "storage": {
            "database_url": pg_database,
            "redis_url": f"{REDIS}/{1 + worker_number() % 15}",
            "redis_prefix": f"bastion:test:{secrets.token_hex(6)}:",
            # the client, the gateway and the simulator share one event loop in these tests:
            # a burst of 200 requests delays the loop, not the stores
            "store_timeout_s": 5,
        },
        "tiers": {"pro": {"requests_per_minute": 100_000, "concurrent_requests": 1_000}},
    }


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/scaled" in str(item.fspath):
            item.add_marker(pytest.mark.postgres)
            item.add_marker(pytest.mark.redis)

"""Liveness and readiness, on the public and the admin listener."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bastion.errors import StoreUnavailableError
from bastion.http.routes import health
from bastion.storage.redis import admission as redis_store
from tests.ops.conftest import ADMIN, call
from tests.support.harness import Stack
from tests.support.ports import free_port
from tests.support.services import redis_prefix, redis_url


async def _admin(stack: Stack, path: str) -> tuple[int, dict[str, Any]]:
    assert stack.server.admin_url is not None
    async with stack.http.get(stack.server.admin_url + path) as response:
        return response.status, await response.json()


async def test_live_and_ready_without_a_key(stack: Stack) -> None:
    for path, expected in (("/healthz", {"status": "ok"}), ("/readyz", {"status": "ready"})):
        status, body, headers = await call(stack, "GET", path)
        assert status == 200
        assert isinstance(body, dict)
        assert body.items() >= expected.items()
        assert headers["x-request-id"].startswith("req_")
        assert await _admin(stack, path) == (200, body)
    assert (await _admin(stack, "/readyz"))[1] == {"status": "ready", "database": "up"}


async def test_ready_fails_when_the_store_of_record_fails(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken() -> int:
        raise StoreUnavailableError()

    monkeypatch.setattr(stack.runtime.db.changes, "head", broken)
    status, body, _ = await call(stack, "GET", "/readyz")
    assert (status, body) == (503, {"status": "unavailable", "database": "down"})
    # liveness is not readiness: the process itself is fine
    assert (await call(stack, "GET", "/healthz"))[0] == 200


async def test_ready_fails_when_the_store_of_record_hangs(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def hung() -> int:
        await asyncio.Event().wait()
        return 0

    monkeypatch.setattr(health, "READY_TIMEOUT_S", 0.05)
    monkeypatch.setattr(stack.runtime.db.changes, "head", hung)
    assert (await _admin(stack, "/readyz")) == (503, {"status": "unavailable", "database": "down"})


async def test_ready_fails_while_draining(stack: Stack) -> None:
    stack.runtime.draining = True
    try:
        assert await _admin(stack, "/readyz") == (
            503,
            {"status": "unavailable", "database": "up", "gateway": "draining"},
        )
    finally:
        stack.runtime.draining = False


@pytest.mark.redis
@pytest.mark.parametrize(
    "config",
    [{**ADMIN, "storage": {"redis_url": redis_url(), "redis_prefix": redis_prefix()}}],
)
async def test_ready_pings_redis(stack: Stack) -> None:
    assert await _admin(stack, "/readyz") == (
        200,
        {"status": "ready", "database": "up", "redis": "up"},
    )
    working = stack.runtime.redis_admission
    assert working is not None
    # the same client code, pointed at a port where no Redis listens
    unreachable = redis_store.RedisAdmission(
        redis_store.connect(f"redis://127.0.0.1:{free_port()}/0", 0.2),
        prefix=redis_prefix(),
        lease_ttl_s=15,
        heartbeat_s=1,
        read_epoch=lambda: stack.runtime.db.meta.get("unused"),  # never called by a ping
        write_epoch=lambda _epoch: stack.runtime.db.meta.set("unused", _epoch),
    )
    stack.runtime.redis_admission = unreachable
    try:
        status, body = await _admin(stack, "/readyz")
        assert (status, body) == (503, {"status": "unavailable", "database": "up", "redis": "down"})
    finally:
        stack.runtime.redis_admission = working
        await unreachable.close()

"""Store outages and dead replicas in the scaled-out topology, compared with the ledger.

- Redis stopped under load: 503, nothing charged twice or lost; service resumes.
- Redis restarted empty: live requests' holds are restored; no overspend.
- PostgreSQL stopped: 503; no acknowledged charge is lost.
- A replica killed with -9: its leases and holds lapse; the others go on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest

from tests.scaled.cluster import start_cluster
from tests.scaled.outages import CuttableProxy, OwnRedis

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MESSAGES = [{"role": "user", "content": "outage"}]
FAST = {"BASTION_LEASE_TTL_S": "2", "BASTION_HEARTBEAT_S": "0.3", "BASTION_STORE_TIMEOUT_S": "1"}


@pytest.fixture
async def redis(tmp_path: Path) -> AsyncIterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.stop()


async def _call(client: openai.AsyncOpenAI, max_tokens: int = 4) -> tuple[int, str | None]:
    try:
        raw = await client.chat.completions.with_raw_response.create(
            model="gpt-oss-20b", messages=MESSAGES, max_tokens=max_tokens
        )
    except openai.APIStatusError as error:
        return error.status_code, error.code
    except openai.APIConnectionError:
        return 0, None  # the connection was dropped: a failed request
    return raw.http_response.status_code, raw.headers.get("x-request-id")


async def _load(
    clients: list[openai.AsyncOpenAI], stop: asyncio.Event, seen: list[tuple[int, str | None]]
) -> None:
    async def worker(client: openai.AsyncOpenAI) -> None:
        while not stop.is_set():
            seen.append(await _call(client))
            await asyncio.sleep(0.01)

    await asyncio.gather(*(worker(c) for c in clients for _ in range(3)))


async def _until(predicate: object, attempts: int = 400) -> None:
    for _ in range(attempts):
        if await predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition never became true")


async def test_redis_stopped_under_load_fails_closed_and_recovers(
    tmp_path: Path, pg_database: str, redis: OwnRedis
) -> None:
    cluster = await start_cluster(tmp_path, pg_database, redis.url, replicas=2, extra_env=FAST)
    try:
        account_id, _, secret = await cluster.account("5")
        clients = [cluster.client(i, secret) for i in range(2)]
        stop, seen = asyncio.Event(), []
        load = asyncio.ensure_future(_load(clients, stop, seen))
        await _until(lambda: _count(seen, 200, at_least=30))
        redis.stop()
        await _until(lambda: _count(seen, 503, at_least=10))
        redis.start()  # empty: no epoch, no balances, no leases
        mark = len(seen)
        await _until(lambda: _count(seen[mark:], 200, at_least=20))
        stop.set()
        await load
        codes = {code for status, code in seen if status == 503}
        assert codes == {"service_unavailable"}
        charges = await cluster.charges(account_id)
        succeeded = {rid for status, rid in seen if status == 200}
        assert set(charges) == succeeded  # nothing lost, nothing for a failed request
        assert (await cluster.cli("ledger", "verify"))["ok"]
    finally:
        await cluster.close()


async def _count(seen: list[tuple[int, str | None]], status: int, at_least: int) -> bool:
    return sum(s == status for s, _ in seen) >= at_least


async def test_redis_restarted_empty_restores_live_holds_without_overspend(
    tmp_path: Path, pg_database: str, redis: OwnRedis
) -> None:
    cluster = await start_cluster(
        tmp_path,
        pg_database,
        redis.url,
        replicas=2,
        extra_env=FAST,
        sim_args=("--tokens-per-second", "25", "--first-token-ms", "0"),
    )
    try:
        # two streams of 150 tokens hold most of the balance for ~6 s
        account_id, _, secret = await cluster.account("0.000100")
        client = cluster.client(0, secret)
        streams = [
            await client.chat.completions.create(
                model="gpt-oss-20b", messages=MESSAGES, max_tokens=150, stream=True
            )
            for _ in range(2)
        ]
        firsts = [await anext(stream) for stream in streams]
        assert all(first.choices for first in firsts)
        redis.stop()
        redis.start()
        probe = cluster.client(1, secret)

        async def answered() -> bool:
            status, _ = await _call(probe, max_tokens=150)
            return status != 503

        await _until(answered)
        # the restored holds still reserve the credit: a third large request is refused
        status, code = await _call(probe, max_tokens=150)
        assert (status, code) == (402, "insufficient_funds")
        for stream in streams:
            async for _ in stream:
                pass
        charges = await cluster.charges(account_id)
        assert sum(charges.values()) <= 100
        assert (await cluster.cli("ledger", "verify"))["ok"]
    finally:
        await cluster.close()


async def test_postgres_stopped_fails_closed_and_loses_no_acknowledged_charge(
    tmp_path: Path, pg_database: str, redis: OwnRedis
) -> None:
    proxy = CuttableProxy()
    await proxy.start()
    through_proxy = pg_database.replace(":5432/", f":{proxy.port}/")
    cluster = await start_cluster(tmp_path, through_proxy, redis.url, replicas=2, extra_env=FAST)
    try:
        account_id, _, secret = await cluster.account("5")
        clients = [cluster.client(i, secret) for i in range(2)]
        stop, seen = asyncio.Event(), []
        load = asyncio.ensure_future(_load(clients, stop, seen))
        await _until(lambda: _count(seen, 200, at_least=30))
        await proxy.cut()
        await _until(lambda: _count(seen, 503, at_least=10))
        await proxy.restore()
        mark = len(seen)
        await _until(lambda: _count(seen[mark:], 200, at_least=20))
        stop.set()
        await load
        statuses = {status for status, _ in seen}
        assert statuses <= {200, 503, 0}
        charges = await cluster.charges(account_id)
        succeeded = {rid for status, rid in seen if status == 200}
        assert succeeded <= set(charges)  # every acknowledged answer was charged
        assert set(charges) <= succeeded  # and no failed one
        assert (await cluster.cli("ledger", "verify"))["ok"]
    finally:
        await cluster.close()
        await proxy.cut()


async def test_a_replica_killed_with_minus_9_lets_its_leases_lapse(
    tmp_path: Path, pg_database: str, redis: OwnRedis
) -> None:
    cluster = await start_cluster(
        tmp_path,
        pg_database,
        redis.url,
        replicas=2,
        extra_env=FAST,
        sim_args=("--tokens-per-second", "10", "--first-token-ms", "0"),
    )
    try:
        account_id, key_id, secret = await cluster.account("5")
        await cluster.cli("keys", "limits", key_id, "--concurrency", "2")
        doomed = cluster.client(0, secret)
        streams = [
            await doomed.chat.completions.create(
                model="gpt-oss-20b", messages=MESSAGES, max_tokens=500, stream=True
            )
            for _ in range(2)
        ]
        for stream in streams:
            await anext(stream)
        survivor = cluster.client(1, secret)
        assert (await _call(survivor))[1] == "rate_limit_exceeded"  # both slots taken
        cluster.kill(0)

        async def slot_free() -> bool:
            return (await _call(survivor))[0] == 200

        await _until(slot_free)  # the dead replica's leases lapsed (lease_ttl_s = 2)
        assert (await _call(survivor))[0] == 200
        for stream in streams:
            with pytest.raises(openai.APIError):
                async for _ in stream:
                    pass
        assert (await cluster.cli("ledger", "verify"))["ok"]
        del account_id
    finally:
        await cluster.close()

"""Script calls from many requests leave for Redis together (storage/redis/batcher.py)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from bastion.errors import StoreUnavailableError
from bastion.storage.redis.admission import Translated, connect
from bastion.storage.redis.batcher import ScriptBatcher
from tests.support.services import REDIS, worker_number

INCR = "return redis.call('INCRBY', KEYS[1], ARGV[1])"


@pytest.fixture
async def client() -> AsyncIterator[aioredis.Redis]:
    redis = connect(f"{REDIS}/{1 + worker_number() % 15}", 0.5)
    yield redis
    await redis.aclose(close_connection_pool=True)


async def test_calls_of_one_step_share_one_pipeline_and_each_gets_its_reply(
    client: aioredis.Redis,
) -> None:
    batcher = ScriptBatcher(client, Translated)
    script = client.register_script(INCR)
    key = f"bastion:test:{secrets.token_hex(6)}"
    replies = await asyncio.gather(*(batcher.call(script, [key], [1]) for _ in range(50)))
    assert sorted(replies) == list(range(1, 51))  # each call ran once, atomically
    assert batcher.batches == 1  # the first left alone at once, the 49 others together
    await client.delete(key)
    await batcher.close()


async def test_a_script_redis_forgot_is_loaded_again(client: aioredis.Redis) -> None:
    batcher = ScriptBatcher(client, Translated)
    script = client.register_script(INCR + " -- " + secrets.token_hex(4))  # never loaded
    key = f"bastion:test:{secrets.token_hex(6)}"
    assert await batcher.call(script, [key], [5]) == 5
    await client.script_flush()  # as after a restart of Redis
    assert await batcher.call(script, [key], [5]) == 10
    await client.delete(key)
    await batcher.close()


async def test_failures_reach_every_caller_as_store_unavailable(
    client: aioredis.Redis,
) -> None:
    batcher = ScriptBatcher(client, Translated)
    broken = client.register_script("return redis.call('NO_SUCH_COMMAND')")
    with pytest.raises(StoreUnavailableError):
        await batcher.call(broken, ["k"], [])
    gone = connect("redis://127.0.0.1:1/0", 0.2)  # nothing listens there
    unreachable = ScriptBatcher(gone, Translated)
    calls = [unreachable.call(gone.register_script(INCR), ["k"], [1]) for _ in range(3)]
    for call in calls:
        with pytest.raises(StoreUnavailableError):
            await call
    await unreachable.close()
    await gone.aclose(close_connection_pool=True)
    await batcher.close()

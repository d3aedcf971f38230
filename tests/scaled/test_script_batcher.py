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
from tests.support.services import redis_url

INCR = "return redis.call('INCRBY', KEYS[1], ARGV[1])"


@pytest.fixture
async def client() -> AsyncIterator[aioredis.Redis]:
    redis = connect(redis_url(), 0.5)
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


BUSY = """
local start = redis.call('TIME')
repeat
  local now = redis.call('TIME')
until (now[1] - start[1]) * 1000000 + (now[2] - start[2]) >= tonumber(ARGV[1])
return 'late'
"""


async def test_a_reply_that_came_too_late_never_answers_the_next_call() -> None:
    # Its own client, with a short timeout: the busy script outlives it.
    client = connect(redis_url(), 0.02)
    batcher = ScriptBatcher(client, Translated)
    busy = client.register_script(BUSY)
    counter = client.register_script(INCR)
    key = f"bastion:test:{secrets.token_hex(6)}"
    with pytest.raises(StoreUnavailableError):
        await batcher.call(busy, [], [60_000])  # 60 ms of Redis's time, 20 ms allowed
    await asyncio.sleep(0.1)  # Redis is done with it; its reply is on the old connection
    assert await batcher.call(counter, [key], [7]) == 7  # its own reply, not 'late'
    # A caller that stops waiting (its client left) leaves no reply behind either.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(batcher.call(busy, [], [15_000]), timeout=0.005)
    await asyncio.sleep(0.03)
    assert await batcher.call(counter, [key], [1]) == 8
    await client.delete(key)
    await batcher.close()
    await client.aclose(close_connection_pool=True)


async def test_a_connection_the_server_closed_is_made_again(client: aioredis.Redis) -> None:
    batcher = ScriptBatcher(client, Translated)
    counter = client.register_script(INCR)
    key = f"bastion:test:{secrets.token_hex(6)}"
    assert await batcher.call(counter, [key], [1]) == 1
    db = str(client.connection_pool.connection_kwargs["db"])
    killed = 0
    for entry in await client.client_list():  # the batcher's: this database, last evalsha
        if entry.get("db") == db and entry.get("cmd") == "evalsha":
            killed += await client.client_kill_filter(_id=entry["id"])
    assert killed == 1
    await asyncio.sleep(0.05)  # the close reaches this process
    assert await batcher.call(counter, [key], [3]) == 4
    await client.delete(key)
    await batcher.close()


async def test_calls_already_made_are_answered_before_a_close(client: aioredis.Redis) -> None:
    """A release queued behind another call still reaches Redis when the gateway closes."""
    batcher = ScriptBatcher(client, Translated)
    busy = client.register_script(BUSY)
    counter = client.register_script(INCR)
    key = f"bastion:test:{secrets.token_hex(6)}"
    out = asyncio.ensure_future(batcher.call(busy, [], [20_000]))  # 20 ms in Redis
    await asyncio.sleep(0.005)
    queued = batcher.queue(counter, [key], [2])  # behind it, for the next pipeline
    assert not batcher.idle
    await batcher.close()
    assert await out == "late"
    assert await queued == 2
    assert int(await client.get(key) or 0) == 2
    await client.delete(key)


async def test_arguments_reach_the_script_as_given(client: aioredis.Redis) -> None:
    """The batcher encodes its commands itself (hiredis's packer): every kind of argument the
    admission sends arrives intact, non-ASCII and empty strings, negative and large numbers."""
    batcher = ScriptBatcher(client, Translated)
    script = client.register_script("return {KEYS[1], unpack(ARGV)}")
    key = f"bastion:test:{secrets.token_hex(6)}:é"
    args: list[str | int] = ["", -1, 0, 2**62, "ünïcødé ✓", "with space", "req_0123:x"]
    replies = await asyncio.gather(
        batcher.call(script, [key], args), batcher.call(script, [key], args[::-1])
    )
    expected = [key, *(str(a) for a in args)]
    assert replies == [expected, [key, *(str(a) for a in args[::-1])]]
    await batcher.close()

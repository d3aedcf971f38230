"""GCRA as clients see it: exact admitted counts, exact Retry-After, the x-ratelimit headers."""

from __future__ import annotations

import openai
import pytest

from bastion.core.clock import FakeClock
from tests.support.harness import Stack


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def _set_rpm(stack: Stack, key_secret: str, rpm: int, concurrency: int | None = None) -> None:
    from bastion.core import keys

    principal = await stack.runtime.db.keys.principal_by_digest(keys.digest(key_secret))
    assert principal is not None
    changes: dict[str, int | None] = {"rpm_override": rpm}
    if concurrency is not None:
        changes["concurrency_override"] = concurrency
    await stack.runtime.keys.set_limits(principal.key.id, changes, actor="test")
    stack.runtime.authenticator.drop_key(principal.key.id)


async def _call(client: openai.AsyncOpenAI) -> tuple[int, dict[str, str]]:
    try:
        raw = await client.chat.completions.with_raw_response.create(
            model="gpt-oss-20b", messages=[{"role": "user", "content": "hi"}], max_tokens=2
        )
    except openai.RateLimitError as error:
        headers = dict(error.response.headers)
        headers["code"] = error.code or ""
        return 429, headers
    return raw.http_response.status_code, dict(raw.headers)


async def test_burst_then_one_per_interval_exactly(stack: Stack, clock: FakeClock) -> None:
    _, secret = await stack.account_and_key()
    await _set_rpm(stack, secret, 5)  # interval 12 s, burst 5
    client = stack.client(secret)

    results = [await _call(client) for _ in range(8)]
    statuses = [status for status, _ in results]
    assert statuses == [200] * 5 + [429] * 3
    remaining = [int(h["x-ratelimit-remaining-requests"]) for _, h in results[:5]]
    assert remaining == [4, 3, 2, 1, 0]
    for _, headers in results[5:]:
        assert headers["code"] == "rate_limit_exceeded"
        assert headers["retry-after"] == "12"
        assert headers["x-ratelimit-limit-requests"] == "5"
        assert headers["x-ratelimit-remaining-requests"] == "0"

    clock.advance(11_999)
    assert (await _call(client))[0] == 429
    _, headers = await _call(client)
    assert headers["retry-after"] == "1"  # 1 ms left, rounded up to a whole second
    clock.advance(1)
    assert [(await _call(client))[0] for _ in range(2)] == [200, 429]

    # Over a long window the admitted count is exactly burst + elapsed / interval.
    admitted = 0
    for _ in range(10):
        clock.advance(6_000)
        for _ in range(3):
            admitted += (await _call(client))[0] == 200
    assert admitted == 60_000 // 12_000


async def test_full_bucket_refills_to_the_burst(stack: Stack, clock: FakeClock) -> None:
    _, secret = await stack.account_and_key()
    await _set_rpm(stack, secret, 3)
    client = stack.client(secret)
    assert [(await _call(client))[0] for _ in range(4)] == [200, 200, 200, 429]
    clock.advance(10 * 60_000)  # long idle: the bucket holds at most the burst
    assert [(await _call(client))[0] for _ in range(4)] == [200, 200, 200, 429]


async def test_concurrency_ceiling_answers_429_with_retry_after(
    stack: Stack, sim_options: object
) -> None:
    _, secret = await stack.account_and_key()
    await _set_rpm(stack, secret, 1000, concurrency=1)
    await stack.sim_control(fault="stall")  # the first request hangs upstream
    client = stack.client(secret)
    import asyncio

    first = asyncio.ensure_future(
        client.chat.completions.create(
            model="gpt-oss-20b", messages=[{"role": "user", "content": "hi"}]
        )
    )
    for _ in range(200):
        if (await stack.sim_stats())["in_flight"]:
            break
        await asyncio.sleep(0.01)
    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(
            model="gpt-oss-20b", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.response.headers["retry-after"] == "1"
    assert "concurrent" in caught.value.message
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_models_list_counts_against_the_limit_but_is_never_charged(
    stack: Stack, clock: FakeClock
) -> None:
    account_id, secret = await stack.account_and_key(usd="0.01")
    await _set_rpm(stack, secret, 2)
    client = stack.client(secret)
    await client.models.list()
    await client.models.list()
    with pytest.raises(openai.RateLimitError):
        await client.models.list()
    await stack.settled()
    kinds = [e["kind"] for e in await stack.runtime.db.ledger.entries(account_id)]
    assert kinds == ["grant"]

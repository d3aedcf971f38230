"""Reserve ahead: when a request ends, its replica admits the key's next request in advance.

A reservation is an admission in Redis like any other (a slot, a hold, a rate allowance), so
no limit or balance can be exceeded; the next request that fits it is admitted with no round
trip; one left unused goes back whole, its rate allowance too; small limits never get one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bastion.core.admission import Outcome
from bastion.storage.redis.admission import RedisAdmission
from tests.contract.support import FakeEpochBook, ask, redis_admission, until

pytestmark = pytest.mark.redis

ACCOUNT = "acct_rsv"
KEY = "key_rsv"


@pytest.fixture
async def store() -> AsyncIterator[RedisAdmission]:
    store = redis_admission(timeout_s=2.0, lease_ttl_s=15.0, heartbeat_s=5.0)
    yield store
    await store.close()


def _ask(hold: int = 7, **terms: Any) -> Any:
    return ask(key=KEY, account=ACCOUNT, hold=hold, lease_ms=15_000, **terms)


async def _pending(store: RedisAdmission) -> int:
    return int(await store._redis.hget(store._k("acct", ACCOUNT), "pending") or 0)


async def _slots(store: RedisAdmission) -> int:
    return int(await store._redis.zcard(store._k("cc", KEY)))


async def _served_and_released(store: RedisAdmission, **terms: Any) -> None:
    first = _ask(**terms)
    assert (await store.admit(first)).outcome is Outcome.ADMITTED
    await store.release(first.request_id, 0, None)


async def _reserved(store: RedisAdmission, **terms: Any) -> None:
    """A funded account whose key's first request ended and left a reservation."""
    await store.seed_account(ACCOUNT, 1_000_000, 1)
    await _served_and_released(store, **terms)
    assert await until(lambda: KEY in store._reserved)


async def test_the_next_request_is_admitted_on_the_reservation_without_a_round_trip(
    store: RedisAdmission, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _reserved(store, rpm=600, concurrency=20)
    # taken in Redis as any admission is: a slot, a hold, a rate allowance
    assert await _slots(store) == 1
    assert await store.open_holds(ACCOUNT) == 14  # twice the first request's

    async def no_round_trip(*_: object) -> None:
        raise AssertionError("admitted through Redis")

    monkeypatch.setattr(store._batch, "call", no_round_trip)
    monkeypatch.setattr(store._batch, "queue", no_round_trip)
    second = _ask(hold=13, rpm=600, concurrency=20)  # fits in 14
    result = await store.admit(second)
    assert result.outcome is Outcome.ADMITTED
    assert store.reserved_admissions == 1
    assert result.limit.remaining == 598  # the burst less the first request and this one
    assert result.available == 1_000_000 - 14
    monkeypatch.undo()

    # its release frees the reservation's slot and hold, charges, and reserves anew
    await store.release(second.request_id, 3, 2)
    assert await until(lambda: KEY in store._reserved)
    await store._batch.drain(1.0)
    assert await _slots(store) == 1
    assert await store.open_holds(ACCOUNT) == 26  # the new one, on the second's terms
    assert await store._redis.hget(store._k("acct", ACCOUNT), "balance") == "999997"


async def test_an_unused_reservation_goes_back_whole_its_rate_allowance_too() -> None:
    store = redis_admission(timeout_s=2.0, lease_ttl_s=15.0, heartbeat_s=0.05)
    try:
        await store.seed_account(ACCOUNT, 1_000_000, 1)
        rate_key = store._k("rl", KEY)
        first = _ask(rpm=60, concurrency=10)  # one a second
        assert (await store.admit(first)).outcome is Outcome.ADMITTED
        after_first = int(await store._redis.get(rate_key))
        await store.release(first.request_id, 0, None)
        assert await until(lambda: KEY in store._reserved)
        assert int(await store._redis.get(rate_key)) >= after_first + 1_000

        await asyncio.sleep(0.06)  # unused for a heartbeat
        await store.heartbeat()
        await store._batch.drain(1.0)
        assert not store._reserved
        seconds, micros = await store._redis.time()
        now_ms = seconds * 1000 + micros // 1000
        # as if it had never been taken (GCRA's state is never before now)
        assert after_first <= int(await store._redis.get(rate_key)) <= max(after_first, now_ms)
        assert await _slots(store) == 0
        assert await store.open_holds(ACCOUNT) == 0
        assert await _pending(store) == 0
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("terms", "balance"),
    [
        ({"rpm": 59, "concurrency": 100}, 1_000_000),
        ({"rpm": 600, "concurrency": 9}, 1_000_000),
        # a reservation holds 14: less than 64 of them left in credit, or under the cap
        ({"rpm": 600, "concurrency": 100}, 60 * 14),
        ({"rpm": 600, "concurrency": 100, "cap": 60 * 14}, 1_000_000),
    ],
    ids=["rate", "concurrency", "credit", "spend-cap"],
)
async def test_small_limits_and_little_room_get_no_reservation(
    store: RedisAdmission, terms: dict[str, int], balance: int
) -> None:
    await store.seed_account(ACCOUNT, balance, 1)
    if "cap" in terms:
        await store.seed_key_spend(KEY, ACCOUNT, 202611, 0, 1)
    await _served_and_released(store, **terms)
    assert await until(lambda: KEY in store._declined)
    await store._batch.drain(1.0)
    assert not store._reserved
    assert await _slots(store) == 0
    assert await store.open_holds(ACCOUNT) == 0
    # declined once, not asked again for a heartbeat: one round trip per request, as before
    await _served_and_released(store, **terms)
    await store._batch.drain(1.0)
    assert not store._reserving
    assert not store._reserved


async def test_a_request_that_needs_more_than_the_reservation_is_admitted_by_redis(
    store: RedisAdmission,
) -> None:
    await _reserved(store, rpm=600, concurrency=20)
    larger = _ask(hold=15, rpm=600, concurrency=20)  # more than twice the first's 7
    assert (await store.admit(larger)).outcome is Outcome.ADMITTED
    assert store.reserved_admissions == 0
    await store._batch.drain(1.0)
    assert await store.open_holds(ACCOUNT) == 15  # the reservation went back
    assert await _slots(store) == 1


async def test_new_limits_are_not_served_from_a_reservation_taken_under_the_old(
    store: RedisAdmission,
) -> None:
    await _reserved(store, rpm=600, concurrency=20)
    stricter = _ask(rpm=120, concurrency=20)
    assert (await store.admit(stricter)).outcome is Outcome.ADMITTED
    assert store.reserved_admissions == 0


async def test_reservations_and_admissions_together_never_exceed_the_concurrency(
    store: RedisAdmission,
) -> None:
    await _reserved(store, rpm=6_000, concurrency=10)
    results = [(await store.admit(_ask(rpm=6_000, concurrency=10))).outcome for _ in range(11)]
    assert results == [Outcome.ADMITTED] * 10 + [Outcome.CONCURRENCY]
    assert store.reserved_admissions == 1
    assert await _slots(store) == 10


async def test_replicas_reserving_for_one_key_lose_nothing() -> None:
    book = FakeEpochBook()
    first = redis_admission(timeout_s=2.0, lease_ttl_s=15.0, heartbeat_s=5.0, book=book)
    second = redis_admission(
        timeout_s=2.0, lease_ttl_s=15.0, heartbeat_s=5.0, prefix=first._prefix, book=book
    )
    replicas = (first, second)
    await first.seed_account(ACCOUNT, 1_000_000, 1)

    async def one(n: int) -> None:
        replica = replicas[n % 2]
        request = _ask(hold=3, rpm=60_000, concurrency=50)
        result = await replica.admit(request)
        if result.outcome is Outcome.ADMITTED:
            await asyncio.sleep(0.001 * (n % 3))
            await replica.release(request.request_id, 1, n + 2)

    for wave in range(10):
        await asyncio.gather(*(one(wave * 20 + n) for n in range(20)))
    assert first.reserved_admissions + second.reserved_admissions > 0
    await first.close()
    await second.close()  # each gives its reservation back
    check = redis_admission(
        timeout_s=2.0, lease_ttl_s=15.0, heartbeat_s=5.0, prefix=first._prefix, book=book
    )
    try:
        assert await _slots(check) == 0
        assert await check.open_holds(ACCOUNT) == 0
        assert await _pending(check) == 0
        balance = int(await check._redis.hget(check._k("acct", ACCOUNT), "balance"))
        assert balance == 1_000_000 - 200  # every charge applied once, none lost
    finally:
        await check.close()


async def test_a_reservation_lost_with_redis_data_is_restored_by_the_heartbeat(
    store: RedisAdmission,
) -> None:
    await _reserved(store, rpm=600, concurrency=20)
    await store._batch.drain(1.0)
    doomed = [key async for key in store._redis.scan_iter(match=store._prefix + "*")]
    await store._redis.delete(*doomed)  # Redis came back empty
    await store.seed_account(ACCOUNT, 1_000_000, 1)
    assert await store.heartbeat() == 1
    assert await store.open_holds(ACCOUNT) == 14
    assert await _slots(store) == 1


async def test_a_reservation_given_back_twice_gives_its_rate_allowance_back_once(
    store: RedisAdmission,
) -> None:
    await store.seed_account(ACCOUNT, 1_000_000, 1)
    rate_key = store._k("rl", KEY)
    first = _ask(rpm=60, concurrency=10)
    assert (await store.admit(first)).outcome is Outcome.ADMITTED
    after_first = int(await store._redis.get(rate_key))
    await store.release(first.request_id, 0, None)
    assert await until(lambda: KEY in store._reserved)
    reservation = store._reserved.pop(KEY)
    store._unreserve(reservation)
    store._unreserve(reservation)  # its lease is gone: the proof it was given back already
    await store._batch.drain(1.0)
    # once: back to the first request's TAT (twice would have moved it an interval earlier)
    assert int(await store._redis.get(rate_key)) >= after_first
    assert await store.open_holds(ACCOUNT) == 0
    assert await _pending(store) == 0

"""The Redis heartbeat extends live holds and never brings back one released meanwhile."""

from __future__ import annotations

import asyncio

import pytest

from bastion.core.admission import Outcome
from tests.contract.support import ask, redis_admission


async def test_a_request_released_during_a_heartbeat_keeps_its_hold_released(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # no reservation for the key's next request: every hold here is a request's
    store = redis_admission(timeout_s=2.0, lease_ttl_s=15.0, heartbeat_s=5.0, reserve_ahead=False)
    account = "acct_hb"
    await store.seed_account(account, 1_000_000, 1)
    # more live requests than one refresh carries (200): the refresh goes in two parts
    ids = [f"req_hb_{i}" for i in range(250)]
    for request_id in ids:
        request = ask(key="key_hb", account=account, hold=7, request_id=request_id, lease_ms=15_000)
        assert (await store.admit(request)).outcome is Outcome.ADMITTED
    assert await store.open_holds(account) == 7 * 250

    epoch = store.epoch

    async def known_epoch(_key: str) -> str | None:  # no round trip before the refresh
        return epoch

    monkeypatch.setattr(store._redis, "get", known_epoch)
    beat = asyncio.ensure_future(store.heartbeat())
    await asyncio.sleep(0)  # the heartbeat has read the live requests and sent its refresh
    # Released while the refresh is on its way; the last one is in its second part.
    await asyncio.gather(*(store.release(request_id, 0, None) for request_id in ids))
    assert await beat == 0  # nothing was lost, nothing re-created
    assert await store.open_holds(account) == 0
    await store.close()

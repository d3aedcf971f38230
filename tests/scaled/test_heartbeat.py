"""The Redis heartbeat extends live holds and never brings back one released meanwhile."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from bastion.core.admission import AdmitRequest, Outcome
from bastion.core.limits import Rate
from bastion.storage.redis.admission import RedisAdmission, connect
from tests.support.services import REDIS, worker_number


class EpochBook:
    value: str | None = None

    async def read(self) -> str | None:
        return self.value

    async def write(self, epoch: str) -> None:
        self.value = epoch


def _request(request_id: str, account: str) -> AdmitRequest:
    return AdmitRequest(
        request_id=request_id,
        key_id="key_hb",
        account_id=account,
        rate=Rate(100_000),
        concurrency=10_000,
        hold=7,
        month=202612,
        spend_cap=None,
        lease_ttl_ms=15_000,
    )


async def test_a_request_released_during_a_heartbeat_keeps_its_hold_released(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    book = EpochBook()
    store = RedisAdmission(
        connect(f"{REDIS}/{1 + worker_number() % 15}", 2.0),
        prefix=f"bastion:test:{secrets.token_hex(6)}:",
        lease_ttl_s=15.0,
        heartbeat_s=5.0,
        read_epoch=book.read,
        write_epoch=book.write,
    )
    account = "acct_hb"
    await store.seed_account(account, 1_000_000, 1)
    # more live requests than one refresh carries (200): the refresh goes in two parts
    ids = [f"req_hb_{i}" for i in range(250)]
    for request_id in ids:
        assert (await store.admit(_request(request_id, account))).outcome is Outcome.ADMITTED
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

"""In-process admission: what ``open_holds`` reports while requests are in flight."""

from __future__ import annotations

from bastion.core.admission import AdmitRequest, Outcome
from bastion.core.limits import Rate
from bastion.storage.memory.admission import MemoryAdmission


def request(request_id: str, hold: int) -> AdmitRequest:
    return AdmitRequest(
        request_id=request_id,
        key_id="key_1",
        account_id="acct_1",
        rate=Rate(600),
        concurrency=8,
        hold=hold,
        month=202611,
        spend_cap=None,
        lease_ttl_ms=60_000,
    )


async def admitted(store: MemoryAdmission, request_id: str, hold: int) -> None:
    result = await store.admit(request(request_id, hold))
    if result.outcome is Outcome.SEED_ACCOUNT:
        await store.seed_account("acct_1", 1_000_000, 1)
        result = await store.admit(request(request_id, hold))
    assert result.outcome is Outcome.ADMITTED


async def test_open_holds_counts_live_holds() -> None:
    store = MemoryAdmission()
    await admitted(store, "req_1", 500)
    assert await store.open_holds("acct_1") == 500
    await store.release("req_1", 0, None)
    assert await store.open_holds("acct_1") == 0


async def test_open_holds_survives_a_forgotten_account() -> None:
    store = MemoryAdmission()
    await admitted(store, "req_1", 500)
    await store.forget_account("acct_1")  # e.g. a credit grant seen on the change feed
    assert await store.open_holds("acct_1") == 500


async def test_a_reseeded_account_keeps_its_live_holds() -> None:
    """What matters for money: re-seeding after a forget still counts the live holds."""
    store = MemoryAdmission()
    await admitted(store, "req_1", 600_000)
    await store.forget_account("acct_1")
    result = await store.admit(request("req_2", 600_000))
    assert result.outcome is Outcome.SEED_ACCOUNT
    await store.seed_account("acct_1", 1_000_000, 2)
    result = await store.admit(request("req_2", 600_000))
    assert result.outcome is Outcome.INSUFFICIENT  # 1.0 - 0.6 held < 0.6

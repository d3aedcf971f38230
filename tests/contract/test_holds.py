"""Holds role: credit reserved at admission, settled by ledger version, caps, seeding races."""

from __future__ import annotations

from bastion.core.admission import AdmissionStore, Outcome
from tests.contract.support import ask


async def test_unknown_balance_asks_to_be_seeded(admission: AdmissionStore) -> None:
    assert (await admission.admit(ask(hold=10))).outcome is Outcome.SEED_ACCOUNT
    await admission.seed_account("acct_a", 100, 7)
    assert (await admission.admit(ask(hold=10))).outcome is Outcome.ADMITTED


async def test_a_free_request_needs_no_balance(admission: AdmissionStore) -> None:
    assert (await admission.admit(ask(hold=0))).outcome is Outcome.ADMITTED


async def test_holds_reserve_credit_until_released(admission: AdmissionStore) -> None:
    await admission.seed_account("acct_a", 100, 1)
    first, second = ask(hold=60), ask(hold=60)
    assert (await admission.admit(first)).outcome is Outcome.ADMITTED
    refused = await admission.admit(second)
    assert refused.outcome is Outcome.INSUFFICIENT
    assert refused.available == 40
    assert await admission.open_holds("acct_a") == 60
    await admission.release(first.request_id, 0, None)  # failed: free
    assert await admission.open_holds("acct_a") == 0
    assert (await admission.admit(second)).outcome is Outcome.ADMITTED


async def test_a_charge_moves_the_balance_once(admission: AdmissionStore) -> None:
    await admission.seed_account("acct_a", 100, 1)
    first = ask(hold=50)
    assert (await admission.admit(first)).outcome is Outcome.ADMITTED
    await admission.release(first.request_id, 30, 2)  # charged 30 at ledger version 2
    assert (await admission.admit(ask(hold=70))).outcome is Outcome.ADMITTED
    assert (await admission.admit(ask(hold=1))).outcome is Outcome.INSUFFICIENT


async def test_a_seed_taken_after_a_charge_does_not_count_it_twice(
    admission: AdmissionStore,
) -> None:
    await admission.seed_account("acct_a", 100, 1)
    request = ask(hold=50)
    await admission.admit(request)
    await admission.release(request.request_id, 30, 2)
    # a grant elsewhere: the cache is dropped and re-seeded from a snapshot that includes
    # the charge (version 3: 100 - 30 + 50)
    await admission.forget_account("acct_a")
    await admission.seed_account("acct_a", 120, 3)
    assert (await admission.admit(ask(hold=120))).outcome is Outcome.ADMITTED


async def test_a_seed_read_before_a_charge_still_sees_it(admission: AdmissionStore) -> None:
    """The race a cache of a ledger must survive: snapshot read (version 1), then a charge
    commits and is applied (version 2), then the stale snapshot is seeded."""
    await admission.seed_account("acct_a", 100, 1)
    request = ask(hold=50)
    await admission.admit(request)
    await admission.forget_account("acct_a")
    await admission.release(request.request_id, 30, 2)
    await admission.seed_account("acct_a", 100, 1)  # stale: taken before the charge
    assert (await admission.admit(ask(hold=71))).outcome is Outcome.INSUFFICIENT
    assert (await admission.admit(ask(hold=70))).outcome is Outcome.ADMITTED


async def test_forgetting_a_balance_keeps_the_open_holds(admission: AdmissionStore) -> None:
    await admission.seed_account("acct_a", 100, 1)
    assert (await admission.admit(ask(hold=80))).outcome is Outcome.ADMITTED
    await admission.forget_account("acct_a")
    await admission.seed_account("acct_a", 150, 2)  # a grant of 50
    assert await admission.open_holds("acct_a") == 80
    assert (await admission.admit(ask(hold=71))).outcome is Outcome.INSUFFICIENT
    assert (await admission.admit(ask(hold=70))).outcome is Outcome.ADMITTED


async def test_spend_cap_counts_spent_and_open_holds(admission: AdmissionStore) -> None:
    await admission.seed_account("acct_a", 1_000, 1)
    capped = ask(hold=40, cap=100)
    assert (await admission.admit(capped)).outcome is Outcome.SEED_KEY
    await admission.seed_key_spend("key_a", "acct_a", 202611, 30, 1)
    assert (await admission.admit(capped)).outcome is Outcome.ADMITTED
    refused = await admission.admit(ask(hold=40, cap=100))
    assert refused.outcome is Outcome.SPEND_CAP
    assert refused.available == 30
    await admission.release(capped.request_id, 25, 2)
    assert (await admission.admit(ask(hold=45, cap=100))).outcome is Outcome.ADMITTED
    assert (await admission.admit(ask(hold=1, cap=100))).outcome is Outcome.SPEND_CAP


async def test_a_new_month_starts_a_new_spend(admission: AdmissionStore) -> None:
    await admission.seed_account("acct_a", 1_000, 1)
    await admission.seed_key_spend("key_a", "acct_a", 202611, 100, 1)
    assert (await admission.admit(ask(hold=1, cap=100))).outcome is Outcome.SPEND_CAP
    december = ask(hold=1, cap=100, month=202612)
    assert (await admission.admit(december)).outcome is Outcome.SEED_KEY
    await admission.seed_key_spend("key_a", "acct_a", 202612, 0, 1)
    assert (await admission.admit(december)).outcome is Outcome.ADMITTED


async def test_open_holds_are_counted_even_while_the_balance_is_forgotten(
    admission: AdmissionStore,
) -> None:
    await admission.seed_account("acct_a", 100, 1)
    request = ask(hold=40)
    assert (await admission.admit(request)).outcome is Outcome.ADMITTED
    await admission.forget_account("acct_a")
    assert await admission.open_holds("acct_a") == 40
    await admission.release(request.request_id, 0, None)
    assert await admission.open_holds("acct_a") == 0

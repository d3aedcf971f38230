"""Limiter role: GCRA through admission, on every AdmissionStore backend."""

from __future__ import annotations

from bastion.core.admission import AdmissionStore, Outcome
from tests.contract.support import ask


async def test_burst_is_the_rate_then_refused_with_the_wait(admission: AdmissionStore) -> None:
    results = [await admission.admit(ask(rpm=3)) for _ in range(4)]
    assert [r.outcome for r in results] == [Outcome.ADMITTED] * 3 + [Outcome.RATE_LIMITED]
    assert [r.limit.remaining for r in results[:3]] == [2, 1, 0]
    refused = results[3]
    assert not refused.limit.allowed
    # one request every 20 s: the next is allowed in (almost exactly) 20 s
    assert 19_000 <= refused.retry_after_ms <= 20_000
    assert refused.limit.remaining == 0


async def test_keys_are_limited_independently(admission: AdmissionStore) -> None:
    assert (await admission.admit(ask(key="k1", rpm=1))).outcome is Outcome.ADMITTED
    assert (await admission.admit(ask(key="k1", rpm=1))).outcome is Outcome.RATE_LIMITED
    assert (await admission.admit(ask(key="k2", rpm=1))).outcome is Outcome.ADMITTED


async def test_a_refused_request_consumes_no_allowance(admission: AdmissionStore) -> None:
    await admission.seed_account("acct_poor", 10, 1)
    for _ in range(5):
        refused = await admission.admit(ask(rpm=2, account="acct_poor", hold=100))
        assert refused.outcome is Outcome.INSUFFICIENT
    assert (await admission.admit(ask(rpm=2, account="acct_poor", hold=5))).outcome is (
        Outcome.ADMITTED
    )
    assert (await admission.admit(ask(rpm=2))).outcome is Outcome.ADMITTED
    assert (await admission.admit(ask(rpm=2))).outcome is Outcome.RATE_LIMITED

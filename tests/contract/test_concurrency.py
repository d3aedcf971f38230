"""Concurrency role: per-key slots, released at the end, lapsing if never released."""

from __future__ import annotations

import asyncio

from bastion.core.admission import AdmissionStore, Outcome
from bastion.storage.memory.admission import MemoryAdmission
from bastion.storage.redis.admission import RedisAdmission
from tests.contract.support import ask


async def lapse(store: AdmissionStore) -> None:
    """Let leases outlive their TTL: move the fake clock, or wait out Redis's 0.6 s lease."""
    if isinstance(store, MemoryAdmission):
        store.clock.advance(601)  # type: ignore[attr-defined]
        await store.sweep()
    else:
        await asyncio.sleep(0.8)


async def test_ceiling_then_release_frees_a_slot(admission: AdmissionStore) -> None:
    first = ask(concurrency=2)
    assert (await admission.admit(first)).outcome is Outcome.ADMITTED
    assert (await admission.admit(ask(concurrency=2))).outcome is Outcome.ADMITTED
    refused = await admission.admit(ask(concurrency=2))
    assert refused.outcome is Outcome.CONCURRENCY
    assert refused.retry_after_ms == 1000
    await admission.release(first.request_id, 0, None)
    assert (await admission.admit(ask(concurrency=2))).outcome is Outcome.ADMITTED


async def test_release_is_idempotent(admission: AdmissionStore) -> None:
    first = ask(concurrency=1)
    assert (await admission.admit(first)).outcome is Outcome.ADMITTED
    await admission.release(first.request_id, 0, None)
    await admission.release(first.request_id, 0, None)
    assert (await admission.admit(ask(concurrency=1))).outcome is Outcome.ADMITTED
    assert (await admission.admit(ask(concurrency=1))).outcome is Outcome.CONCURRENCY


async def test_a_lease_never_released_lapses(admission: AdmissionStore) -> None:
    assert (await admission.admit(ask(concurrency=1))).outcome is Outcome.ADMITTED
    assert (await admission.admit(ask(concurrency=1))).outcome is Outcome.CONCURRENCY
    if isinstance(admission, RedisAdmission):
        admission._live.clear()  # its replica died: nobody refreshes the lease any more
    await lapse(admission)
    assert (await admission.admit(ask(concurrency=1))).outcome is Outcome.ADMITTED

"""GCRA: "N per minute" is a sustained N/min with a burst of N; exact integer Retry-After."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.core.limits import Rate, gcra, reset_text, retry_after_seconds


def run(rate: Rate, times: list[int], tat: int | None = None) -> tuple[list[bool], int | None]:
    allowed = []
    for now in times:
        decision = gcra(rate, tat, now)
        allowed.append(decision.allowed)
        if decision.allowed:
            tat = decision.tat_ms
    return allowed, tat


def test_rate_interval_and_burst() -> None:
    assert Rate(60).interval_ms == 1000
    assert Rate(60).burst == 60
    assert Rate(600).interval_ms == 100
    assert Rate(10**9).interval_ms == 1  # absurd rates stay well defined


def test_a_fresh_key_may_burst_n_requests_at_once() -> None:
    rate = Rate(60)
    tat = None
    remaining = []
    for _ in range(60):
        decision = gcra(rate, tat, 0)
        assert decision.allowed
        remaining.append(decision.remaining)
        tat = decision.tat_ms
    assert remaining == list(range(59, -1, -1))
    refused = gcra(rate, tat, 0)
    assert not refused.allowed
    assert refused.remaining == 0
    assert refused.retry_after_ms == 1000  # one emission interval
    assert refused.tat_ms == tat  # a refusal changes nothing


def test_after_the_burst_one_request_per_interval() -> None:
    rate = Rate(60)
    _, tat = run(rate, [0] * 60)
    assert not gcra(rate, tat, 999).allowed
    later = gcra(rate, tat, 1000)
    assert later.allowed
    assert not gcra(rate, later.tat_ms, 1000).allowed


def test_sustained_rate_is_never_refused() -> None:
    rate = Rate(120)
    allowed, _ = run(rate, [i * rate.interval_ms for i in range(1000)])
    assert all(allowed)


def test_the_bucket_refills_fully_after_a_quiet_minute() -> None:
    rate = Rate(30)
    _, tat = run(rate, [0] * 30)
    allowed, _ = run(rate, [60_000] * 31, tat)
    assert allowed.count(True) == 30


def test_retry_after_is_exactly_when_the_next_request_passes() -> None:
    rate = Rate(7)  # interval 8571 ms: not a whole number of seconds
    _, tat = run(rate, [0] * 7)
    refused = gcra(rate, tat, 5)
    assert not refused.allowed
    assert not gcra(rate, tat, 5 + refused.retry_after_ms - 1).allowed
    assert gcra(rate, tat, 5 + refused.retry_after_ms).allowed


@settings(max_examples=200, deadline=None)
@given(
    per_minute=st.integers(min_value=1, max_value=600),
    gaps=st.lists(st.integers(min_value=0, max_value=5000), min_size=1, max_size=300),
)
def test_never_more_than_burst_plus_sustained(per_minute: int, gaps: list[int]) -> None:
    rate = Rate(per_minute)
    times = []
    now = 0
    for gap in gaps:
        now += gap
        times.append(now)
    allowed, _ = run(rate, times)
    admitted = [t for t, ok in zip(times, allowed, strict=True) if ok]
    window = times[-1] - times[0]
    assert len(admitted) <= rate.burst + window // rate.interval_ms + 1


@pytest.mark.parametrize(
    ("ms", "seconds"),
    [(0, 1), (1, 1), (999, 1), (1000, 1), (1001, 2), (59_001, 60), (-5, 1)],
)
def test_retry_after_seconds_rounds_up_to_at_least_one(ms: int, seconds: int) -> None:
    assert retry_after_seconds(ms) == seconds


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "0ms"),
        (850, "850ms"),
        (-3, "0ms"),
        (1000, "1s"),
        (1001, "2s"),
        (63_000, "1m3s"),
        (120_000, "2m0s"),
    ],
)
def test_reset_text(ms: int, text: str) -> None:
    assert reset_text(ms) == text

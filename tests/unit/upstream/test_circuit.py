"""Passive health: consecutive failures open a circuit; after the open time, one probe."""

from __future__ import annotations

from bastion.core.clock import SystemClock
from bastion.upstream.circuit import Circuit, CircuitBook


def test_opens_after_consecutive_failures() -> None:
    circuit = Circuit(failures_to_open=3, open_ms=1000)
    for now in (0, 1):
        circuit.failure(now)
        assert circuit.state(now) == "closed"
    circuit.failure(2)
    assert circuit.state(2) == "open"
    assert not circuit.may_try(500)


def test_a_success_resets_the_count() -> None:
    circuit = Circuit(failures_to_open=2, open_ms=1000)
    circuit.failure(0)
    circuit.success()
    circuit.failure(1)
    assert circuit.state(1) == "closed"


def test_half_open_allows_one_probe_at_a_time() -> None:
    circuit = Circuit(failures_to_open=1, open_ms=1000)
    circuit.failure(0)
    assert circuit.state(1000) == "half_open"
    assert circuit.may_try(1000)
    assert not circuit.may_try(1001)  # the probe is out
    circuit.failure(1002)  # the probe failed: open again, for a full period
    assert circuit.state(1500) == "open"
    assert circuit.may_try(2002)
    circuit.success()
    assert circuit.state(2003) == "closed"
    assert circuit.may_try(2003)
    assert circuit.may_try(2003)


def test_the_book_keeps_one_circuit_per_name() -> None:
    book = CircuitBook(SystemClock())
    first = book.get("sim/m", 5, 10.0)
    assert book.get("sim/m", 1, 1.0) is first
    first.failure(0)
    snapshot = book.snapshot()
    assert snapshot == {
        "sim/m": {"state": "closed", "consecutive_failures": 1, "failures": 1, "successes": 0}
    }


def test_an_abandoned_probe_frees_the_slot() -> None:
    """A client that leaves mid-probe proves nothing: the next request may probe."""
    from bastion.core.clock import FakeClock

    clock = FakeClock()
    circuit = CircuitBook(clock).get("sim/m", failures_to_open=1, open_s=1)
    circuit.failure(clock.now_ms())
    clock.advance(1_000)
    assert circuit.may_try(clock.now_ms())
    circuit.abandon()
    assert circuit.may_try(clock.now_ms())

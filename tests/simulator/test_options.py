"""SimulatorOptions and their validation."""

from __future__ import annotations

import pytest

from bastion.simulator.options import FAULTS, SimulatorOptions, validated


def test_defaults() -> None:
    options = SimulatorOptions()
    assert options.tokens_per_second == 50.0
    assert options.fault is None
    assert options.to_dict()["stall_after_chunks"] == 3


def test_validated_returns_a_copy() -> None:
    options = SimulatorOptions()
    changed = validated(options, {"fault": "reset", "fault_rate": 1, "tokens_per_second": 0})
    assert changed.fault == "reset"
    assert changed.fault_rate == 1.0
    assert options.fault is None


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_every_fault_is_accepted(fault: str) -> None:
    assert validated(SimulatorOptions(), {"fault": fault}).fault == fault


def test_assign_keeps_the_object() -> None:
    options = SimulatorOptions()
    alias = options
    options.assign(SimulatorOptions(default_max_tokens=5))
    assert alias.default_max_tokens == 5


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"fault_rate": -0.1}, "fault_rate"),
        ({"slow_first_byte_ms": "5"}, "slow_first_byte_ms"),
        ({"api_key": 3}, "api_key"),
        ({"bogus": 1, "other": 2}, "bogus, other"),
    ],
)
def test_bad_values(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validated(SimulatorOptions(), changes)

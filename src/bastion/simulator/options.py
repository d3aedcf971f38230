"""Run-time options of the simulator, and their validation for the control endpoint."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

FAULTS = frozenset({"5xx", "reset", "slow_first_byte", "stall", "wrong_content_type"})


@dataclass(slots=True)  # mutable: faults can be switched at run time
class SimulatorOptions:
    tokens_per_second: float = 50.0  # pacing of streamed tokens; 0 = no pacing
    first_token_ms: float = 50.0  # delay before the first streamed token; 0 = none
    default_max_tokens: int = 64  # completion length when the request has no max_tokens
    fault: str | None = None  # None | "5xx" | "reset" | "slow_first_byte" | "stall" | ...
    fault_rate: float = 1.0  # probability that a request gets the fault
    slow_first_byte_ms: float = 5000.0
    stall_after_chunks: int = 3  # "stall": stream this many chunks, then hang
    api_key: str | None = None  # if set, require `Authorization: Bearer <api_key>`
    report_usage: bool = True  # False imitates a server that reports no usage at all

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def copy(self) -> SimulatorOptions:
        return SimulatorOptions(**asdict(self))

    def assign(self, other: SimulatorOptions) -> None:
        """Take every value of `other` in place, so references to `self` stay live."""
        for field in fields(self):
            setattr(self, field.name, getattr(other, field.name))


def _number(name: str, value: object, *, upper: float = math.inf) -> float:
    # bool is an int subclass; a JSON `true` is not a number here
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number")
    number = float(value)
    if not 0.0 <= number <= upper:
        raise ValueError(f"{name} must be between 0 and {upper:g}")
    return number


def _integer(name: str, value: object, *, lower: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer")
    if value < lower:
        raise ValueError(f"{name} must be at least {lower}")
    return value


def _fault(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and value in FAULTS:
        return value
    raise ValueError(f"fault must be null or one of {', '.join(sorted(FAULTS))}")


def _api_key(value: object) -> str | None:
    if value is None or (isinstance(value, str) and value):
        return value
    raise ValueError("api_key must be null or a non-empty string")


def validated(options: SimulatorOptions, changes: Mapping[str, object]) -> SimulatorOptions:
    """Return a copy of `options` with `changes` applied; raise ValueError on any bad value.

    All changes are checked before any is applied, so a bad request changes nothing.
    """
    known = {field.name for field in fields(SimulatorOptions)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise ValueError(f"unknown option(s): {', '.join(unknown)}")
    result = options.copy()
    for name, value in changes.items():
        match name:
            case "tokens_per_second" | "first_token_ms" | "slow_first_byte_ms":
                setattr(result, name, _number(name, value))
            case "fault_rate":
                result.fault_rate = _number(name, value, upper=1.0)
            case "default_max_tokens":
                result.default_max_tokens = _integer(name, value, lower=1)
            case "stall_after_chunks":
                result.stall_after_chunks = _integer(name, value, lower=0)
            case "fault":
                result.fault = _fault(value)
            case "report_usage":
                if not isinstance(value, bool):
                    raise ValueError("report_usage must be true or false")
                result.report_usage = value
            case _:  # "api_key", the only field left
                result.api_key = _api_key(value)
    return result

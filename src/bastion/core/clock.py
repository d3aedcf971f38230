"""Time comes through a clock object so limits and expiries can be tested without sleeping."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int:
        """Milliseconds on a clock that never goes backwards."""

    def wall_s(self) -> float:
        """Unix time in seconds, for timestamps shown to people."""


class SystemClock:
    def now_ms(self) -> int:
        return time.monotonic_ns() // 1_000_000

    def wall_s(self) -> float:
        return time.time()


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, start_ms: int = 1_000_000, wall_start_s: float = 1_767_225_600.0) -> None:
        self._ms = start_ms
        self._wall = wall_start_s

    def now_ms(self) -> int:
        return self._ms

    def wall_s(self) -> float:
        return self._wall + self._ms / 1000

    def advance(self, ms: int) -> None:
        self._ms += ms

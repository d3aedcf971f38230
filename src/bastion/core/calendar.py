"""UTC day and month numbers used to group usage and to reset monthly spend caps."""

from __future__ import annotations

import time


def day_of(ms: int) -> int:
    """YYYYMMDD (UTC) of a Unix-millisecond timestamp."""
    t = time.gmtime(ms // 1000)
    return t.tm_year * 10000 + t.tm_mon * 100 + t.tm_mday


def month_of(ms: int) -> int:
    """YYYYMM (UTC) of a Unix-millisecond timestamp."""
    t = time.gmtime(ms // 1000)
    return t.tm_year * 100 + t.tm_mon


def now_ms() -> int:
    return time.time_ns() // 1_000_000

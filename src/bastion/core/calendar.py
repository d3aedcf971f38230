"""UTC day and month numbers used to group usage and to reset monthly spend caps."""

from __future__ import annotations

import time

DAY_MS = 86_400_000

# The UTC day last asked about: (its first ms, the next day's first ms, YYYYMMDD, YYYYMM).
# Unix time has exactly 86,400 s per day, so a day's bounds are plain arithmetic; nearly every
# call is about today, and gmtime runs once a day.  One tuple, replaced whole (the settlement
# writer's thread reads it too).
_today: tuple[int, int, int, int] = (0, 0, 19700101, 197001)


def _day(ms: int) -> tuple[int, int, int, int]:
    global _today
    day = _today
    if day[0] <= ms < day[1]:
        return day
    t = time.gmtime(ms // 1000)
    start = ms - ms % DAY_MS
    day = (
        start,
        start + DAY_MS,
        t.tm_year * 10000 + t.tm_mon * 100 + t.tm_mday,
        t.tm_year * 100 + t.tm_mon,
    )
    _today = day
    return day


def day_of(ms: int) -> int:
    """YYYYMMDD (UTC) of a Unix-millisecond timestamp."""
    return _day(ms)[2]


def month_of(ms: int) -> int:
    """YYYYMM (UTC) of a Unix-millisecond timestamp."""
    return _day(ms)[3]


def now_ms() -> int:
    return time.time_ns() // 1_000_000

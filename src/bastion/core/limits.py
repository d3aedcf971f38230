"""Rate-limit policy: GCRA, the header values, and the ``Retry-After`` rounding.

"N requests per minute" means a sustained rate of N per minute with a burst of N: a fresh key
may send N requests at once, then one every 60/N seconds.  The state per key is one number,
the theoretical arrival time (TAT), in integer milliseconds, so the same arithmetic runs in
this module (in-process limiter) and in a Redis Lua script on Redis's own clock.
"""

from __future__ import annotations

from bastion.core.frozen import record


@record
class Rate:
    per_minute: int

    @property
    def interval_ms(self) -> int:
        """Emission interval T in ms (at least 1, so absurd rates stay well-defined)."""
        return max(1, 60_000 // self.per_minute)

    @property
    def burst(self) -> int:
        return self.per_minute


@record
class LimitDecision:
    allowed: bool
    tat_ms: int
    """The new TAT to store when allowed (unchanged state otherwise)."""
    retry_after_ms: int
    remaining: int
    reset_ms: int


def gcra(rate: Rate, tat_ms: int | None, now_ms: int) -> LimitDecision:
    """One GCRA step.  ``tat_ms`` None means the key has no state yet (a full bucket)."""
    interval = rate.interval_ms
    tat = now_ms if tat_ms is None or tat_ms < now_ms else tat_ms
    new_tat = tat + interval
    allow_at = new_tat - rate.burst * interval
    if now_ms < allow_at:
        return LimitDecision(
            allowed=False,
            tat_ms=tat,
            retry_after_ms=allow_at - now_ms,
            remaining=0,
            reset_ms=tat - now_ms,
        )
    remaining = (now_ms - allow_at) // interval
    return LimitDecision(
        allowed=True,
        tat_ms=new_tat,
        retry_after_ms=0,
        remaining=min(rate.burst, remaining),
        reset_ms=new_tat - now_ms,
    )


def retry_after_seconds(ms: int) -> int:
    """Integer seconds, rounded up, at least 1 (never an HTTP date)."""
    return max(1, -(-ms // 1000))


def reset_text(ms: int) -> str:
    """``x-ratelimit-reset-requests`` in OpenAI style: ``"850ms"``, ``"12s"``, ``"1m3s"``."""
    if ms < 1000:
        return f"{max(0, ms)}ms"
    seconds = -(-ms // 1000)
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes}m{seconds}s" if minutes else f"{seconds}s"

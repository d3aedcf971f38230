"""Named attempt limits over the shared counters (sign-in, sign-up, codes).

Subjects (an email, a phone number, an address) are stored as a digest: the counters table
says how often something was tried, not who tried it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from bastion.core.clock import Clock
from bastion.errors import RateLimitedError
from bastion.storage.sql.throttles import SqlThrottles

MINUTE_MS = 60_000


@dataclass(frozen=True, slots=True)
class Limit:
    name: str
    count: int
    window_ms: int
    message: str


class Throttle:
    def __init__(self, store: SqlThrottles, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def _now(self) -> int:
        return int(self._clock.wall_s() * 1000)

    @staticmethod
    def key(limit: Limit, subject: str) -> str:
        return f"{limit.name}:{hashlib.sha256(subject.encode()).hexdigest()[:40]}"

    async def hit(self, limit: Limit, subject: str) -> None:
        """Count one attempt; RateLimitedError (with the wait) once the limit is passed."""
        now = self._now()
        hit = await self._store.hit(self.key(limit, subject), limit.window_ms, now)
        if hit.hits > limit.count:
            wait_s = max(1, -(-(hit.window_end_ms - now) // 1000))
            raise RateLimitedError(f"{limit.message} Try again in {_duration(wait_s)}.", wait_s)

    async def clear(self, limit: Limit, subject: str) -> None:
        await self._store.clear(self.key(limit, subject))


def _duration(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} seconds"
    return f"{-(-seconds // 60)} minutes"

"""Admission as data: what is asked of the limits-and-holds store, and what it answers.

One call decides a request's rate limit, concurrency slot, spend cap and credit hold
together, all-or-nothing: a request that is refused for any reason consumes nothing.  The
in-process store runs the steps under the event loop's single thread; the Redis store runs
the same steps in one Lua script.  Either way the answer is one :class:`AdmitResult`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

from bastion.core.frozen import record
from bastion.core.limits import LimitDecision, Rate


class Outcome(StrEnum):
    ADMITTED = "admitted"
    RATE_LIMITED = "rate_limited"
    CONCURRENCY = "concurrency"
    SPEND_CAP = "spend_cap"
    INSUFFICIENT = "insufficient"
    SEED_ACCOUNT = "seed_account"
    """The store does not know the account's balance yet: load it and retry."""
    SEED_KEY = "seed_key"
    """The store does not know the key's spend this month yet: load it and retry."""


@record
class AdmitRequest:
    request_id: str
    key_id: str
    account_id: str
    rate: Rate
    concurrency: int
    hold: int
    """Worst-case cost in micro-USD, reserved until the request settles."""
    month: int
    spend_cap: int | None
    lease_ttl_ms: int


@record
class AdmitResult:
    outcome: Outcome
    limit: LimitDecision
    available: int = 0
    """Credit available after holds (for the 402 message), or cap headroom for SPEND_CAP."""
    retry_after_ms: int = 0


class AdmissionStore(Protocol):
    """Per-key rate and concurrency, per-account holds, per-key monthly spend."""

    async def admit(self, request: AdmitRequest) -> AdmitResult: ...

    async def release(self, request_id: str, charge: int, version: int | None) -> None:
        """End a request: free its slot and hold, and apply its committed charge (at ledger
        ``version``) to the cached balance and key spend unless a later seed included it."""

    async def seed_account(self, account_id: str, balance: int, version: int) -> None:
        """Set the posted balance from the store of record (kept if a newer one is known)."""

    async def seed_key_spend(
        self, key_id: str, account_id: str, month: int, spent: int, version: int
    ) -> None: ...

    async def forget_account(self, account_id: str) -> None:
        """Drop the cached balance so the next admission reloads it (after a grant)."""

    async def open_holds(self, account_id: str) -> int: ...

    async def sweep(self) -> int:
        """Expire holds and slots of requests that outlived their lease; returns how many."""

    async def drain(self) -> None:
        """Wait (bounded) until every release already started has reached the store: a
        request cut short releases in the background, after its handler has ended."""

    async def close(self) -> None: ...

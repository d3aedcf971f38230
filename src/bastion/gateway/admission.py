"""Admit a request: rate limit, concurrency slot, spend cap and credit hold, or refuse it.

This is the one place where "fail closed" is decided: if the admission store or the balance
store cannot answer within ``store_timeout_s``, the request gets 503 and never reaches an
upstream unmetered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bastion.core.admission import AdmissionStore, AdmitRequest, AdmitResult, Outcome
from bastion.core.calendar import month_of, now_ms
from bastion.core.catalog import Tier
from bastion.core.frozen import record
from bastion.core.limits import LimitDecision, Rate, reset_text, retry_after_seconds
from bastion.core.money import format_usd
from bastion.core.records import Principal
from bastion.errors import (
    InsufficientFundsError,
    RateLimitedError,
    ServiceUnavailableError,
    SpendCapExceededError,
    StoreUnavailableError,
)
from bastion.observability.metrics import Metrics
from bastion.storage.sql.ledger import SqlLedger

log = logging.getLogger("bastion.admission")


REFUSALS = {
    Outcome.RATE_LIMITED: "rate_limit",
    Outcome.CONCURRENCY: "concurrency",
    Outcome.SPEND_CAP: "spend_cap",
    Outcome.INSUFFICIENT: "insufficient_funds",
}


@record
class Limits:
    """The limits that apply to one key: its tier's, unless the operator overrode them."""

    rate: Rate
    concurrency: int

    @classmethod
    def of(cls, principal: Principal, tier: Tier) -> Limits:
        key = principal.key
        return cls(
            rate=Rate(key.rpm_override or tier.requests_per_minute),
            concurrency=key.concurrency_override or tier.concurrent_requests,
        )


def rate_headers(rate: Rate, decision: LimitDecision) -> dict[str, str]:
    return {
        "x-ratelimit-limit-requests": str(rate.per_minute),
        "x-ratelimit-remaining-requests": str(decision.remaining),
        "x-ratelimit-reset-requests": reset_text(decision.reset_ms),
    }


@dataclass(slots=True)
class Ticket:
    """An admitted request's claim on a slot and a hold, released exactly once."""

    request_id: str
    principal: Principal
    hold: int
    headers: dict[str, str]
    _store: AdmissionStore
    released: bool = field(default=False)
    _metrics: Metrics | None = None

    async def release(self, charge: int = 0, version: int | None = None) -> None:
        if self.released:
            return
        self.released = True
        try:
            # no task of ours here: an in-process release never suspends, and the Redis
            # store shields its own call, so a cancelled request still releases
            await self._store.release(self.request_id, charge, version)
        except StoreUnavailableError:
            # The hold and slot expire by themselves (lease TTL); nothing is lost but time.
            log.warning("release failed; hold will expire", extra={"request_id": self.request_id})
            if self._metrics is not None:
                self._metrics.store_error("admission", "release")


class Admission:
    def __init__(
        self,
        store: AdmissionStore,
        ledger: SqlLedger,
        *,
        store_timeout_s: float,
        lease_ttl_s: float,
        store_failing: Callable[[], bool] = lambda: False,
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics or Metrics()
        self._store = store
        self._ledger = ledger
        self._timeout = store_timeout_s
        self._lease_ttl_ms = int(lease_ttl_s * 1000)
        self._seeding: dict[str, asyncio.Future[None]] = {}
        self._store_failing = store_failing

    async def admit(self, request_id: str, principal: Principal, tier: Tier, hold: int) -> Ticket:
        try:
            return await self._admit(request_id, principal, tier, hold)
        except StoreUnavailableError:
            self._metrics.refused("store_unavailable")
            raise

    async def _admit(self, request_id: str, principal: Principal, tier: Tier, hold: int) -> Ticket:
        if self._store_failing():
            self._metrics.store_error("ledger", "admit")
            raise StoreUnavailableError(
                "The balance store is unavailable: requests cannot be billed, retry shortly"
            )
        limits = Limits.of(principal, tier)
        request = AdmitRequest(
            request_id=request_id,
            key_id=principal.key.id,
            account_id=principal.account.id,
            rate=limits.rate,
            concurrency=limits.concurrency,
            hold=hold,
            month=month_of(now_ms()),
            spend_cap=principal.key.monthly_spend_cap,
            lease_ttl_ms=self._lease_ttl_ms,
        )
        for _ in range(4):
            result = await self._ask(request)
            if result.outcome is Outcome.ADMITTED:
                return Ticket(
                    request_id,
                    principal,
                    hold,
                    rate_headers(limits.rate, result.limit),
                    self._store,
                    _metrics=self._metrics,
                )
            if result.outcome is Outcome.SEED_ACCOUNT:
                await self._seed_account(request.account_id)
            elif result.outcome is Outcome.SEED_KEY:
                await self._seed_key(request)
            else:
                self._metrics.refused(REFUSALS.get(result.outcome, "other"))
                raise self._refusal(result, request, limits)
        raise ServiceUnavailableError("Admission could not settle on an answer, retry shortly")

    async def _ask(self, request: AdmitRequest) -> AdmitResult:
        # No timer here: the in-process store never waits, and the Redis client's own socket
        # and pool timeouts are store_timeout_s (one timer fewer per request).
        try:
            return await self._store.admit(request)
        except StoreUnavailableError:
            self._metrics.store_error("admission", "admit")
            raise

    async def _once(self, name: str, work: Callable[[], Awaitable[None]]) -> None:
        """Single flight: a burst of first requests for one account seeds it once."""
        running = self._seeding.get(name)
        if running is None:
            running = asyncio.ensure_future(work())
            self._seeding[name] = running
            running.add_done_callback(lambda _: self._seeding.pop(name, None))
        try:
            async with asyncio.timeout(self._timeout * 4):
                await asyncio.shield(running)
        except TimeoutError:
            self._metrics.store_error("ledger", "seed")
            raise StoreUnavailableError() from None
        except StoreUnavailableError:
            self._metrics.store_error("ledger", "seed")
            raise

    async def _seed_account(self, account_id: str) -> None:
        async def seed() -> None:
            funds = await self._ledger.funds(account_id)
            if funds is not None:
                await self._store.seed_account(account_id, funds.balance, funds.version)

        await self._once("account:" + account_id, seed)

    async def _seed_key(self, request: AdmitRequest) -> None:
        async def seed() -> None:
            spent, version = await self._ledger.key_month_spend(request.key_id, request.month)
            await self._store.seed_key_spend(
                request.key_id, request.account_id, request.month, spent, version
            )

        await self._once(f"key:{request.key_id}:{request.month}", seed)

    @staticmethod
    def _refusal(result: AdmitResult, request: AdmitRequest, limits: Limits) -> Exception:
        headers = rate_headers(limits.rate, result.limit)
        error: RateLimitedError | SpendCapExceededError | InsufficientFundsError
        if result.outcome is Outcome.RATE_LIMITED:
            error = RateLimitedError(
                f"Rate limit reached: {limits.rate.per_minute} requests per minute for this "
                f"key. Retry after {retry_after_seconds(result.retry_after_ms)} s.",
                retry_after_s=retry_after_seconds(result.retry_after_ms),
            )
        elif result.outcome is Outcome.CONCURRENCY:
            error = RateLimitedError(
                f"Too many concurrent requests: at most {limits.concurrency} at a time for "
                "this key.",
                retry_after_s=retry_after_seconds(result.retry_after_ms),
            )
        elif result.outcome is Outcome.SPEND_CAP:
            error = SpendCapExceededError(
                f"This key's monthly spend cap of {format_usd(request.spend_cap or 0)} is "
                f"reached: this request needs up to {format_usd(request.hold)} and "
                f"{format_usd(result.available)} remains this month."
            )
        else:
            error = InsufficientFundsError(
                f"Insufficient credit: this request needs up to {format_usd(request.hold)} "
                f"(its worst-case cost) and the account has {format_usd(max(0, result.available))}"
                " available. Add credit or lower max_tokens."
            )
        error.extra_headers.update(headers)
        return error

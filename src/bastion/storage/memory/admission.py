"""In-process admission: exact for one process, which is why the embedded topology refuses to
start more than one.  Every method runs without awaiting, so each is atomic under asyncio."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from bastion.core.admission import AdmitRequest, AdmitResult, Outcome
from bastion.core.clock import Clock, SystemClock
from bastion.core.frozen import record
from bastion.core.limits import gcra


@dataclass(slots=True)
class _Funds:
    balance: int
    version: int
    """Ledger version of the snapshot ``balance`` was seeded from."""
    pending: int = 0


@dataclass(slots=True)
class _KeySpend:
    month: int
    spent: int
    version: int
    """Account ledger version of the snapshot ``spent`` was seeded from."""
    pending: int = 0


@dataclass(slots=True)
class _Hold:
    key_id: str
    account_id: str
    amount: int
    month: int
    expires_ms: int


@record
class _Released:
    """A committed charge this store applied, kept a while so that a snapshot read before the
    commit but seeded after it still accounts for it."""

    version: int
    amount: int
    key_id: str
    month: int
    at_ms: int


RECENT_CHARGES_MS = 60_000


@dataclass(slots=True)
class MemoryAdmission:
    clock: Clock = field(default_factory=SystemClock)
    _tat: dict[str, int] = field(default_factory=dict)
    _slots: dict[str, int] = field(default_factory=dict)
    _funds: dict[str, _Funds] = field(default_factory=dict)
    _spend: dict[str, _KeySpend] = field(default_factory=dict)
    _holds: dict[str, _Hold] = field(default_factory=dict)
    _recent: dict[str, deque[_Released]] = field(default_factory=dict)

    async def admit(self, request: AdmitRequest) -> AdmitResult:
        now = self.clock.now_ms()
        decision = gcra(request.rate, self._tat.get(request.key_id), now)
        funds = self._funds.get(request.account_id)
        if funds is None and request.hold > 0:
            return AdmitResult(Outcome.SEED_ACCOUNT, decision)
        spend = self._spend.get(request.key_id)
        capped = request.spend_cap is not None and request.hold > 0
        if capped and (spend is None or spend.month != request.month):
            return AdmitResult(Outcome.SEED_KEY, decision)
        if not decision.allowed:
            return AdmitResult(
                Outcome.RATE_LIMITED, decision, retry_after_ms=decision.retry_after_ms
            )
        if self._slots.get(request.key_id, 0) >= request.concurrency:
            return AdmitResult(Outcome.CONCURRENCY, decision, retry_after_ms=1000)
        if capped and spend is not None and request.spend_cap is not None:
            headroom = request.spend_cap - spend.spent - spend.pending
            if headroom < request.hold:
                return AdmitResult(Outcome.SPEND_CAP, decision, available=max(0, headroom))
        available = funds.balance - funds.pending if funds is not None else 0
        if request.hold > 0 and available < request.hold:
            return AdmitResult(Outcome.INSUFFICIENT, decision, available=available)
        # Every check passed: commit all of it at once.
        self._tat[request.key_id] = decision.tat_ms
        self._slots[request.key_id] = self._slots.get(request.key_id, 0) + 1
        if funds is not None:
            funds.pending += request.hold
        if spend is not None and spend.month == request.month:
            spend.pending += request.hold
        self._holds[request.request_id] = _Hold(
            key_id=request.key_id,
            account_id=request.account_id,
            amount=request.hold,
            month=request.month,
            expires_ms=now + request.lease_ttl_ms,
        )
        return AdmitResult(Outcome.ADMITTED, decision, available=available - request.hold)

    async def release(self, request_id: str, charge: int, version: int | None) -> None:
        hold = self._holds.pop(request_id, None)
        if hold is not None:
            self._free(hold)
            account_id, key_id, month = hold.account_id, hold.key_id, hold.month
        else:
            return
        if not charge or version is None:
            return
        now = self.clock.now_ms()
        recent = self._recent.setdefault(account_id, deque())
        recent.append(_Released(version, charge, key_id, month, now))
        while recent and recent[0].at_ms < now - RECENT_CHARGES_MS:
            recent.popleft()
        funds = self._funds.get(account_id)
        # A charge is applied iff the snapshot the cache was seeded from did not include it.
        if funds is not None and version > funds.version:
            funds.balance -= charge
        spend = self._spend.get(key_id)
        if spend is not None and spend.month == month and version > spend.version:
            spend.spent += charge

    def _free(self, hold: _Hold) -> None:
        slots = self._slots.get(hold.key_id, 0) - 1
        if slots > 0:
            self._slots[hold.key_id] = slots
        else:
            self._slots.pop(hold.key_id, None)
        funds = self._funds.get(hold.account_id)
        if funds is not None:
            funds.pending = max(0, funds.pending - hold.amount)
        spend = self._spend.get(hold.key_id)
        if spend is not None and spend.month == hold.month:
            spend.pending = max(0, spend.pending - hold.amount)

    def _after(self, account_id: str, version: int) -> list[_Released]:
        return [r for r in self._recent.get(account_id, ()) if r.version > version]

    async def seed_account(self, account_id: str, balance: int, version: int) -> None:
        funds = self._funds.get(account_id)
        if funds is not None and version <= funds.version:
            return
        balance -= sum(r.amount for r in self._after(account_id, version))
        if funds is None:
            pending = sum(h.amount for h in self._holds.values() if h.account_id == account_id)
            self._funds[account_id] = _Funds(balance, version, pending)
        else:
            funds.balance, funds.version = balance, version

    async def seed_key_spend(
        self, key_id: str, account_id: str, month: int, spent: int, version: int
    ) -> None:
        spend = self._spend.get(key_id)
        if spend is not None and spend.month == month and version <= spend.version:
            return
        spent += sum(
            r.amount
            for r in self._after(account_id, version)
            if r.key_id == key_id and r.month == month
        )
        if spend is None or spend.month != month:
            pending = sum(
                h.amount for h in self._holds.values() if h.key_id == key_id and h.month == month
            )
            self._spend[key_id] = _KeySpend(month, spent, version, pending)
        else:
            spend.spent, spend.version = spent, version

    async def forget_account(self, account_id: str) -> None:
        self._funds.pop(account_id, None)

    async def open_holds(self, account_id: str) -> int:
        # from the holds themselves: a forgotten (to be re-seeded) balance still has them
        return sum(h.amount for h in self._holds.values() if h.account_id == account_id)

    async def sweep(self) -> int:
        now = self.clock.now_ms()
        expired = [rid for rid, h in self._holds.items() if h.expires_ms <= now]
        for request_id in expired:
            self._free(self._holds.pop(request_id))
        return len(expired)

    async def drain(self) -> None:
        return None  # a release here never waits: nothing is ever in flight

    async def close(self) -> None:
        return None

"""A stateful property-based model of the ledger (Hypothesis) against the real SQLite store.

Random sequences of grants, adjustments, group-committed charges (some of them duplicates),
refunds (some repeated) and admissions must keep: the stored balance equal to the model's,
the balance derivable from the entries (`verify`), exactly one charge per request id, at most
one refund per charge, and the admission cache's balance equal to the store's.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from bastion.core.admission import AdmitRequest, Outcome
from bastion.core.calendar import now_ms
from bastion.core.clock import FakeClock
from bastion.core.limits import Rate
from bastion.core.records import Charge
from bastion.errors import OperatorError
from bastion.settings import StorageSettings
from bastion.storage.memory.admission import MemoryAdmission
from bastion.storage.sql.database import Database

amounts = st.integers(min_value=1, max_value=5_000_000)


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.dir = tempfile.TemporaryDirectory()
        path = Path(self.dir.name) / "ledger.db"
        self.db = Database.open(
            StorageSettings(database_url=f"sqlite:///{path}", sqlite_synchronous="NORMAL")
        )
        self.cache = MemoryAdmission(clock=FakeClock())
        self.run(self._start())
        account = self.run(
            self.db.accounts.create(
                email="m@example.com", phone="+14155550100", tier="free", phone_verified=True
            )
        )
        self.account = account.id
        self.balance = 0
        self.charged: dict[str, int] = {}
        self.refunded: set[str] = set()
        self.next_request = 0

    async def _start(self) -> None:
        await self.db.migrate()
        self.db.settlements.start()

    def run(self, coroutine):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(coroutine)

    def teardown(self) -> None:
        self.run(self.db.close())
        self.loop.close()
        self.dir.cleanup()

    @rule(amount=amounts)
    def grant(self, amount: int) -> None:
        self.run(self.db.ledger.post(account_id=self.account, kind="grant", amount=amount))
        self.balance += amount
        self.run(self.cache.forget_account(self.account))

    @rule(amount=st.integers(min_value=-5_000_000, max_value=5_000_000).filter(bool))
    def adjust(self, amount: int) -> None:
        self.run(
            self.db.ledger.post(
                account_id=self.account, kind="adjustment", amount=amount, reason="model"
            )
        )
        self.balance += amount
        self.run(self.cache.forget_account(self.account))

    @rule(batch=st.lists(amounts, min_size=1, max_size=8), duplicate=st.booleans())
    def charge_concurrently(self, batch: list[int], duplicate: bool) -> None:
        """Several requests settle at once (one group commit); maybe one is replayed."""
        funds = self.run(self.db.ledger.funds(self.account))
        self.run(self.cache.seed_account(self.account, funds.balance, funds.version))
        requests = []
        for amount in batch:
            request_id = f"req_{self.next_request}"
            self.next_request += 1
            requests.append(
                Charge(request_id, self.account, "key_m", amount, "m", "chat", "{}", now_ms())
            )
        if duplicate:
            requests.append(requests[0])

        async def settle_all() -> list[int | None]:
            for charge in requests:
                self.cache._holds.pop(charge.request_id, None)
                await self.cache.admit(
                    AdmitRequest(
                        request_id=charge.request_id,
                        key_id="key_m",
                        account_id=self.account,
                        rate=Rate(1_000_000),
                        concurrency=1_000,
                        hold=0,
                        month=202601,
                        spend_cap=None,
                        lease_ttl_ms=60_000,
                    )
                )
            versions = await asyncio.gather(*(self.db.settlements.charge(c) for c in requests))
            for charge, version in zip(requests, versions, strict=True):
                await self.cache.release(charge.request_id, charge.amount, version)
            return versions

        versions = self.run(settle_all())
        for charge in requests[: len(batch)]:
            self.charged[charge.request_id] = charge.amount
            self.balance -= charge.amount
        if duplicate:
            assert versions[-1] is None  # the replay wrote nothing

    @precondition(lambda self: bool(self.charged))
    @rule(data=st.data())
    def refund(self, data: st.DataObject) -> None:
        request_id = data.draw(st.sampled_from(sorted(self.charged)))
        try:
            self.run(self.db.ledger.refund(request_id, "model", "test"))
        except OperatorError:
            assert request_id in self.refunded
            return
        assert request_id not in self.refunded
        self.refunded.add(request_id)
        self.balance += self.charged[request_id]
        self.run(self.cache.forget_account(self.account))

    @invariant()
    def balances_agree(self) -> None:
        funds = self.run(self.db.ledger.funds(self.account))
        assert funds.balance == self.balance
        checked, mismatches = self.run(self.db.ledger.verify())
        assert checked == 1
        assert mismatches == []

    @invariant()
    def cache_agrees_with_the_store(self) -> None:
        funds = self.run(self.db.ledger.funds(self.account))
        cached = self.cache._funds.get(self.account)
        if cached is not None:
            assert cached.balance == funds.balance

    @invariant()
    def one_charge_per_request(self) -> None:
        entries = self.run(self.db.ledger.entries(self.account, limit=10_000))
        charges = [e["request_id"] for e in entries if e["kind"] == "charge"]
        refunds = [e["request_id"] for e in entries if e["kind"] == "refund"]
        assert sorted(charges) == sorted(self.charged)
        assert sorted(refunds) == sorted(self.refunded)

    @invariant()
    def admission_sees_the_true_balance(self) -> None:
        request = AdmitRequest(
            request_id="probe",
            key_id="key_probe",
            account_id=self.account,
            rate=Rate(1_000_000),
            concurrency=1_000,
            hold=max(1, self.balance),
            month=202601,
            spend_cap=None,
            lease_ttl_ms=60_000,
        )
        funds = self.run(self.db.ledger.funds(self.account))
        self.run(self.cache.seed_account(self.account, funds.balance, funds.version))
        result = self.run(self.cache.admit(request))
        if self.balance > 0:
            assert result.outcome is Outcome.ADMITTED
            self.run(self.cache.release("probe", 0, None))
        else:
            assert result.outcome is Outcome.INSUFFICIENT


TestLedger = LedgerMachine.TestCase
TestLedger.settings = settings(
    max_examples=25,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

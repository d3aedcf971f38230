"""Helpers shared by the contract suites."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable

from bastion.core.admission import AdmitRequest
from bastion.core.limits import Rate
from bastion.storage.redis.admission import RedisAdmission, connect
from bastion.storage.sql.database import Database
from tests.support.services import redis_url


def ask(
    *,
    key: str = "key_a",
    account: str = "acct_a",
    rpm: int = 1_000_000,
    concurrency: int = 1_000,
    hold: int = 0,
    cap: int | None = None,
    month: int = 202611,
    request_id: str | None = None,
    lease_ms: int = 600,
) -> AdmitRequest:
    return AdmitRequest(
        request_id=request_id or "req_" + secrets.token_hex(6),
        key_id=key,
        account_id=account,
        rate=Rate(rpm),
        concurrency=concurrency,
        hold=hold,
        month=month,
        spend_cap=cap,
        lease_ttl_ms=lease_ms,
    )


class FakeEpochBook:
    """The store of record's memory of Redis's epoch, kept in the test."""

    def __init__(self) -> None:
        self.value: str | None = None

    async def read(self) -> str | None:
        return self.value

    async def write(self, epoch: str) -> None:
        self.value = epoch


def redis_admission(
    *,
    timeout_s: float,
    lease_ttl_s: float,
    heartbeat_s: float,
    reserve_ahead: bool = True,
    prefix: str | None = None,
    book: FakeEpochBook | None = None,
) -> RedisAdmission:
    """A Redis admission store on this worker's database, under a prefix of its own (or a
    given one: replicas of one deployment share theirs, and the epoch book)."""
    book = book or FakeEpochBook()
    return RedisAdmission(
        connect(redis_url(), timeout_s),
        prefix=prefix or f"bastion:test:{secrets.token_hex(6)}:",
        lease_ttl_s=lease_ttl_s,
        heartbeat_s=heartbeat_s,
        read_epoch=book.read,
        write_epoch=book.write,
        reserve_ahead=reserve_ahead,
    )


async def new_account(db: Database, balance: int = 0) -> str:
    account = await db.accounts.create(
        email=f"{secrets.token_hex(5)}@example.com",
        phone="+14155550100",
        tier="free",
        phone_verified=True,
    )
    if balance:
        await db.ledger.post(account_id=account.id, kind="grant", amount=balance)
    return account.id


async def until(condition: Callable[[], bool]) -> bool:
    """Poll ``condition`` for up to ~2 s, yielding to the loop between tries."""
    for _ in range(200):
        if condition():
            return True
        await asyncio.sleep(0.01)
    return False

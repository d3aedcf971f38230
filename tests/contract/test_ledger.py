"""Ledger role: entries, balances, refunds, group-committed charges, verification; on SQLite
and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from bastion.core.calendar import month_of, now_ms
from bastion.core.records import Charge, RequestLogEntry
from bastion.errors import OperatorError
from bastion.storage.sql import settlements as settlements_module
from bastion.storage.sql.database import Database
from bastion.storage.sql.tables import request_log
from tests.contract.support import new_account, until


def charge(request_id: str, account: str, amount: int, key: str = "key_x") -> Charge:
    return Charge(request_id, account, key, amount, "m", "chat", '{"source":"upstream"}', now_ms())


async def test_entries_move_the_balance_and_the_version(database: Database) -> None:
    account = await new_account(database)
    funds = await database.ledger.post(account_id=account, kind="grant", amount=1_000)
    assert (funds.balance, funds.version) == (1_000, 1)
    funds = await database.ledger.post(
        account_id=account, kind="adjustment", amount=-250, reason="correction"
    )
    assert (funds.balance, funds.version) == (750, 2)
    kinds = [e["kind"] for e in await database.ledger.entries(account)]
    assert kinds == ["adjustment", "grant"]


async def test_group_commit_writes_each_charge_once(database: Database) -> None:
    account = await new_account(database, balance=10_000)
    charges = [charge(f"req_{i}_{account}", account, 100) for i in range(20)]
    versions = await asyncio.gather(*(database.settlements.charge(c) for c in charges))
    assert sorted(v for v in versions if v is not None) == list(range(2, 22))
    replay = await database.settlements.charge(charges[0])
    assert replay is None  # the same request id again writes nothing
    funds = await database.ledger.funds(account)
    assert funds is not None
    assert (funds.balance, funds.version) == (10_000 - 2_000, 21)
    checked, mismatches = await database.ledger.verify()
    assert checked >= 1
    assert mismatches == []


def usage_row(request_id: str, account: str) -> RequestLogEntry:
    return RequestLogEntry(
        request_id, account, "key_x", "m", "chat", 200, '{"source":"upstream"}', 100, 5, now_ms()
    )


async def logged(database: Database, request_id: str) -> int:
    async with database.engine.connect() as conn:
        found = await conn.scalar(
            select(func.count())
            .select_from(request_log)
            .where(request_log.c.request_id == request_id)
        )
    return int(found or 0)


async def test_a_usage_row_rides_with_the_next_charge(database: Database) -> None:
    # At a low rate a request's usage row must not cost a commit of its own: it goes with the
    # next request's charge (one transaction per request instead of two).
    account = await new_account(database, balance=10_000)
    writer = database.settlements
    await writer.charge(charge(f"req_a_{account}", account, 100))
    before = writer.batches
    writer.log(usage_row(f"req_a_{account}", account))
    await asyncio.sleep(0.05)  # the writer's turn, had the row woken it
    assert writer.batches == before
    await writer.charge(charge(f"req_b_{account}", account, 100))
    assert writer.batches == before + 1
    assert await logged(database, f"req_a_{account}") == 1


async def test_a_usage_row_alone_is_written_after_a_short_wait(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settlements_module, "LOG_DELAY_S", 0.05)
    account = await new_account(database)
    writer = database.settlements
    before = writer.batches
    writer.log(usage_row(f"req_c_{account}", account))
    assert await until(lambda: writer.batches > before)
    assert await logged(database, f"req_c_{account}") == 1


async def test_a_full_batch_of_usage_rows_is_written_at_once(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settlements_module, "LOG_DELAY_S", 60.0)  # never, within this test
    account = await new_account(database)
    writer = database.settlements
    monkeypatch.setattr(writer, "_batch_max", 4)
    before = writer.batches
    for i in range(4):
        writer.log(usage_row(f"req_f{i}_{account}", account))
    assert await until(lambda: writer.batches > before)
    assert writer.batches == before + 1
    assert await logged(database, f"req_f3_{account}") == 1


async def test_a_refund_is_given_at_most_once(database: Database) -> None:
    account = await new_account(database, balance=1_000)
    await database.settlements.charge(charge(f"req_r_{account}", account, 300))
    funds = await database.ledger.refund(f"req_r_{account}", "ops", "bad answer")
    assert funds.balance == 1_000
    with pytest.raises(OperatorError):
        await database.ledger.refund(f"req_r_{account}", "ops", "again")
    with pytest.raises(OperatorError):
        await database.ledger.refund("req_never_charged", "ops", "x")


async def test_statement_and_month_spend(database: Database) -> None:
    account = await new_account(database, balance=10_000)
    for i in range(3):
        await database.settlements.charge(charge(f"req_s{i}_{account}", account, 100, key="k1"))
    await database.settlements.charge(charge(f"req_t_{account}", account, 50, key="k2"))
    await database.ledger.refund(f"req_s0_{account}", "ops", "x")
    rows = await database.ledger.statement(account_id=account)
    assert [(r["model"], r["requests"], r["cost"]) for r in rows] == [("m", 4, 250)]
    key_rows = await database.ledger.statement(key_id="k2")
    assert sum(r["cost"] for r in key_rows) >= 50
    spent, _ = await database.ledger.key_month_spend("k1", month_of(now_ms()))
    assert spent >= 200


async def test_verify_finds_a_tampered_balance(database: Database) -> None:
    from sqlalchemy import update

    from bastion.storage.sql.tables import accounts

    account = await new_account(database, balance=500)
    async with database.engine.begin() as conn:
        await conn.execute(update(accounts).where(accounts.c.id == account).values(balance=501))
    _, mismatches = await database.ledger.verify()
    assert [m.account_id for m in mismatches if m.account_id == account] == [account]
    async with database.engine.begin() as conn:
        await conn.execute(update(accounts).where(accounts.c.id == account).values(balance=500))

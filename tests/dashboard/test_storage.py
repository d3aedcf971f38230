"""The dashboard's repositories on both stores of record (SQLite and PostgreSQL): the upserts,
the atomic check counting and the alert claims behave the same on each."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from bastion.core.calendar import now_ms
from bastion.core.keys import new_id
from bastion.core.records import AccountRecord
from bastion.settings import StorageSettings
from bastion.storage.sql.alerts import SqlBalanceAlerts
from bastion.storage.sql.challenges import Challenge, SqlChallenges
from bastion.storage.sql.credentials import SqlCredentials
from bastion.storage.sql.database import Database
from bastion.storage.sql.server_keys import SqlServerKeys
from bastion.storage.sql.sessions import SqlSessions
from bastion.storage.sql.throttles import SqlThrottles
from bastion.storage.sql.usage import SqlUsage

PG = "postgresql://postgres@127.0.0.1:5432"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    name = ""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'bastion.db'}"
    else:
        name = f"bastion_dash_{secrets.token_hex(5)}"
        admin = await asyncpg.connect(f"{PG}/postgres")
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        url = f"{PG}/{name}"
    database = Database.open(StorageSettings(database_url=url))
    await database.migrate()
    yield database
    await database.close()
    if name:
        admin = await asyncpg.connect(f"{PG}/postgres")
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _account(db: Database, email: str = "a@example.com") -> AccountRecord:
    return await db.accounts.create(
        email=email, phone="+14155550123", tier="free", phone_verified=False
    )


async def test_throttles_and_server_keys(db: Database) -> None:
    throttles = SqlThrottles(db.engine)
    hits = [(await throttles.hit("k", 1000, 5000 + i)).hits for i in range(3)]
    assert hits == [1, 2, 3]
    assert (await throttles.hit("k", 1000, 6000)).hits == 1  # the window ran out
    assert (await throttles.hit("k", 1000, 6001)).window_end_ms == 7000
    await throttles.clear("k")
    assert (await throttles.hit("k", 1000, 6002)).hits == 1
    await throttles.prune(10_000)
    keys = SqlServerKeys(db.engine)
    first = await keys.get_or_create("dashboard")
    assert len(first) == 32
    assert await keys.get_or_create("dashboard") == first


async def test_sessions_and_passwords(db: Database) -> None:
    account = await _account(db)
    sessions = SqlSessions(db.engine)
    now = now_ms()
    await sessions.create(
        digest=b"1" * 32,
        account_id=account.id,
        now_ms=now,
        expires_ms=now + 10,
        ip="127.0.0.1",
        user_agent="x" * 500,
    )
    await sessions.create(
        digest=b"2" * 32,
        account_id=account.id,
        now_ms=now,
        expires_ms=now + 10_000,
        ip=None,
        user_agent=None,
        replaces=b"1" * 32,
    )
    assert await sessions.get(b"1" * 32) is None
    record = await sessions.get(b"2" * 32)
    assert record is not None
    assert record.account.email == "a@example.com"
    await sessions.touch(b"2" * 32, now + 5)
    assert await sessions.count_for(account.id) == 1
    credentials = SqlCredentials(db.engine)
    await credentials.set_password(account.id, "$argon2id$fake", actor="test")
    assert await sessions.count_for(account.id) == 0
    found = await credentials.by_email("A@EXAMPLE.COM")
    assert found is not None
    assert found[1] == "$argon2id$fake"
    await sessions.create(
        digest=b"3" * 32,
        account_id=account.id,
        now_ms=now,
        expires_ms=now + 1,
        ip=None,
        user_agent=None,
    )
    await sessions.prune(now + 2, idle_ms=60_000)
    assert await sessions.count_for(account.id) == 0


def _challenge(account_id: str, *, status: str = "pending") -> Challenge:
    now = now_ms()
    return Challenge(
        id=new_id("chal"),
        purpose="signup",
        account_id=account_id,
        phone="+14155550123",
        provider="console",
        code_digest=b"d" * 32,
        status=status,
        attempts=0,
        created_ms=now,
        expires_ms=now + 600_000,
    )


async def test_challenges(db: Database) -> None:
    account = await _account(db)
    challenges = SqlChallenges(db.engine)
    old, new = _challenge(account.id), _challenge(account.id)
    await challenges.open(old, "127.0.0.1")
    await challenges.open(new, "127.0.0.1")
    assert (await challenges.get(old.id)).status == "superseded"  # type: ignore[union-attr]
    counted, _ = await challenges.count_check(old.id, 5, now_ms())
    assert not counted
    for _ in range(5):
        counted, current = await challenges.count_check(new.id, 5, now_ms())
        assert counted
    assert current is not None
    assert current.attempts == 5
    assert not (await challenges.count_check(new.id, 5, now_ms()))[0]
    fresh = _challenge(account.id)
    await challenges.open(fresh, None)
    assert (await challenges.latest(account.id, "signup")).id == fresh.id  # type: ignore[union-attr]
    updated = await challenges.approve_phone(fresh, actor="test")
    assert updated.phone_verified
    with pytest.raises(Exception, match="already used"):
        await challenges.approve_phone(fresh, actor="test")
    other = await _account(db, "b@example.com")
    assert await challenges.verified_elsewhere("+14155550123", other.id) == 1
    await challenges.prune(now_ms() + 700_000)
    assert await challenges.get(fresh.id) is None


async def test_alert_claims_and_rearming(db: Database) -> None:
    account = await _account(db)
    await db.accounts.update(account.id, low_balance_threshold=5)
    alerts = SqlBalanceAlerts(db.engine)
    (due,) = await alerts.due()
    assert due.account.id == account.id
    assert not due.retry
    assert await alerts.claim(due, now_ms())
    assert not await alerts.claim(due, now_ms())  # another replica loses
    assert await alerts.due() == []
    await alerts.delivered(account.id, ["email"])
    await alerts.failed(account.id)
    (again,) = await alerts.due()
    assert again.retry
    assert again.delivered == frozenset({"email"})
    assert await alerts.claim(again, now_ms())
    await alerts.sent(account.id, now_ms())
    assert await alerts.due() == []
    await db.ledger.post(account_id=account.id, kind="grant", amount=10, actor="test")
    assert await alerts.rearm(now_ms()) == 1
    assert await alerts.state(account.id) is None


async def test_usage_read_models(db: Database) -> None:
    account = await _account(db)
    usage = SqlUsage(db.engine)
    assert await usage.daily(account_id=account.id, day_from=20000101, by="model") == []
    assert await usage.recent(account_id=None) == []
    totals = await usage.platform(20000101)
    assert totals["accounts"] == 1
    assert totals["requests"] == 0
    assert await usage.month_spend_by_key(account.id, 202611) == {}
    assert await usage.account_emails([account.id]) == {account.id: "a@example.com"}

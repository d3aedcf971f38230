"""A settlement batch whose statement got no reply from PostgreSQL (the batch is one
statement, committed before the reply): the client is answered by what the store says
happened, never by a guess.  The proxy breaks the one connection that carries the request's
id, with the statement delivered and its reply lost, or with the statement lost.

- it landed and the store answers: the answer leaves and the charge stands;
- it was lost: written again, once; lost again: 503, nothing charged;
- the store stays away past the wait: 503, and the charge that did land is refunded once the
  store answers, so the client pays nothing for a request it saw fail.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bastion.core.delivery import Delivery
from bastion.errors import StoreUnavailableError
from bastion.settings import StorageSettings
from bastion.storage.sql.database import Database
from bastion.storage.sql.in_doubt import VOID_REASON
from tests.contract.support import new_account
from tests.contract.test_delivery import Recorder
from tests.contract.test_ledger import charge
from tests.scaled.outages import CuttableProxy

ANSWER = b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nanswer"


@pytest.fixture
async def proxy() -> AsyncIterator[CuttableProxy]:
    server = CuttableProxy()
    await server.start()
    yield server
    await server.cut()


@pytest.fixture
async def db(pg_database: str, proxy: CuttableProxy) -> AsyncIterator[Database]:
    url = pg_database.replace(":5432/", f":{proxy.port}/")
    database = Database.open(StorageSettings(database_url=url, store_timeout_s=0.5))
    await database.migrate()
    database.settlements.start()
    yield database
    await database.close()


def in_batch(request_id: str) -> bytes:
    """The request id as the batch statement's parameter carries it (not as a query asks)."""
    return f'"request_id":"{request_id}"'.encode()


async def _kinds(db: Database, account: str) -> list[tuple[str, int]]:
    return [(e["kind"], e["amount"]) for e in await db.ledger.entries(account)]


async def test_a_commit_that_landed_delivers_the_answer_and_keeps_the_charge(
    db: Database, proxy: CuttableProxy
) -> None:
    account = await new_account(db, balance=10_000)
    request_id = f"req_landed_{account}"
    proxy.break_next(in_batch(request_id), delivered=True)
    transport, delivery = Recorder(), Delivery()
    durable = db.settlements.enqueue(charge(request_id, account, 100), delivery)
    assert delivery.hand_over(ANSWER, transport, -1)
    assert await durable == 2  # the version the charge really has: the ledger was asked
    assert proxy.broken.is_set()
    assert transport.written == ANSWER
    assert await _kinds(db, account) == [("charge", -100), ("grant", 10_000)]
    assert (await db.ledger.funds(account)).balance == 9_900  # type: ignore[union-attr]
    assert not db.settlements.failing
    assert not (await db.ledger.verify())[1]


async def test_a_commit_that_was_lost_is_written_again(db: Database, proxy: CuttableProxy) -> None:
    account = await new_account(db, balance=10_000)
    request_id = f"req_lost_{account}"
    proxy.break_next(in_batch(request_id), delivered=False)
    transport, delivery = Recorder(), Delivery()
    durable = db.settlements.enqueue(charge(request_id, account, 100), delivery)
    assert delivery.hand_over(ANSWER, transport, -1)
    assert await durable == 2
    assert proxy.broken.is_set()
    assert transport.written == ANSWER
    assert await _kinds(db, account) == [("charge", -100), ("grant", 10_000)]
    assert not (await db.ledger.verify())[1]


async def test_a_commit_lost_twice_fails_the_request_and_charges_nothing(
    db: Database, proxy: CuttableProxy
) -> None:
    account = await new_account(db, balance=10_000)
    request_id = f"req_lost_twice_{account}"
    proxy.break_next(in_batch(request_id), delivered=False, times=2)
    transport, delivery = Recorder(), Delivery()
    durable = db.settlements.enqueue(charge(request_id, account, 100), delivery)
    assert delivery.hand_over(ANSWER, transport, -1)
    with pytest.raises(StoreUnavailableError):
        await durable
    assert transport.written == b""  # the client gets a 503 from its handler instead
    assert await _kinds(db, account) == [("grant", 10_000)]
    assert db.settlements.voided == 0
    # the writer recovers: the next charge goes through
    assert await db.settlements.charge(charge(f"req_after_{account}", account, 50)) == 2
    assert not (await db.ledger.verify())[1]


async def test_a_landed_commit_unconfirmed_in_time_is_refunded_once_the_store_answers(
    db: Database, proxy: CuttableProxy
) -> None:
    db.settlements.doubt_wait_s = 0.6
    account = await new_account(db, balance=10_000)
    request_id = f"req_void_{account}"
    proxy.break_next(in_batch(request_id), delivered=True, then_cut=True)
    transport, delivery = Recorder(), Delivery()
    durable = db.settlements.enqueue(charge(request_id, account, 100), delivery)
    assert delivery.hand_over(ANSWER, transport, -1)
    with pytest.raises(StoreUnavailableError):
        await durable
    assert transport.written == b""
    assert db.settlements.failing  # admission refuses until the doubt is settled
    await proxy.restore()
    for _ in range(100):
        if not db.settlements.failing:
            break
        await asyncio.sleep(0.05)
    assert not db.settlements.failing
    assert db.settlements.voided == 1
    entries = await db.ledger.entries(account)
    assert [(e["kind"], e["amount"]) for e in entries] == [
        ("refund", 100),
        ("charge", -100),
        ("grant", 10_000),
    ]
    assert entries[0]["request_id"] == request_id
    assert entries[0]["reason"] == VOID_REASON
    assert (await db.ledger.funds(account)).balance == 10_000  # type: ignore[union-attr]
    assert not (await db.ledger.verify())[1]


async def test_a_doubt_that_cannot_be_settled_does_not_close_admission_for_good(
    db: Database, proxy: CuttableProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fault in the settling itself (a bug, not an outage) gives the batch up, with its
    request ids in the log for a refund by hand, and the gateway serves again."""
    import bastion.storage.sql.settlements as settlements

    async def broken(*_args: object, **_kwargs: object) -> dict[str, int | None]:
        raise RuntimeError("a bug")

    monkeypatch.setattr(settlements, "committed_versions", broken)
    monkeypatch.setattr(settlements, "void", broken)
    account = await new_account(db, balance=10_000)
    request_id = f"req_bug_{account}"
    proxy.break_next(in_batch(request_id), delivered=True)
    with pytest.raises(StoreUnavailableError):
        await db.settlements.charge(charge(request_id, account, 100))
    for _ in range(100):
        if not db.settlements.failing:
            break
        await asyncio.sleep(0.05)
    assert not db.settlements.failing
    # the charge did land (the reply was lost) and stands: the log names it for the operator
    assert await _kinds(db, account) == [("charge", -100), ("grant", 10_000)]
    assert await db.settlements.charge(charge(f"req_next_{account}", account, 50)) == 3

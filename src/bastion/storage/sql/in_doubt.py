"""Settlement batches whose COMMIT got no reply: find out whether they landed, and void them.

When the link to PostgreSQL breaks while COMMIT is in flight, the transaction may have
committed although the driver reports an error.  Answering 503 then would leave a charge for a
request the client saw fail; answering 200 would deliver work that may be unbilled.  So the
writer asks the store: :func:`committed_versions` waits for the doubtful transaction to end
(its row locks on the batch's accounts) and then reads which of the batch's charges exist.
If the store stays silent longer than the client can wait, the client gets 503 and the batch
is settled later with :func:`void`: any of its charges that did land is refunded in full,
once, by request id (the ledger's unique ``(request_id, kind)``), so nobody pays for a failed
request and the ledger keeps every entry it ever had.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.core.records import Charge
from bastion.errors import StoreUnavailableError
from bastion.storage.sql.engine import translated_errors
from bastion.storage.sql.ledger import post_entry
from bastion.storage.sql.tables import accounts, ledger

VOID_ACTOR = "bastion"
VOID_REASON = "the charge's commit was not confirmed before the client was answered 503"


class CommitInDoubtError(StoreUnavailableError):
    """The store failed while committing: the batch may or may not be durable."""


@dataclass(slots=True)
class DoubtfulBatch:
    """A batch answered 503 while its commit was unconfirmed; settled once the store answers."""

    charges: list[Charge]


async def committed_versions(
    engine: AsyncEngine, charges: list[Charge], *, lock_timeout_ms: int
) -> dict[str, int | None]:
    """The ledger version of each of ``charges`` that is durable ({} if none is).

    Raises StoreUnavailableError while the answer cannot be known yet: the store is silent,
    or the doubtful transaction still holds its accounts (its server session has not noticed
    the broken link)."""
    account_ids = sorted({c.account_id for c in charges})
    request_ids = [c.request_id for c in charges]
    later = ledger.alias("later")
    # An account's version counts its entries, and entries of one account are written under
    # its row lock, so an entry's version is the number of the account's entries up to it.
    version = (
        select(func.count())
        .select_from(later)
        .where(later.c.account_id == ledger.c.account_id, later.c.id <= ledger.c.id)
        .scalar_subquery()
    )
    async with translated_errors(), engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}"))
        try:
            # Waits for the doubtful transaction to commit or abort: it updated these rows.
            await conn.execute(
                select(accounts.c.id).where(accounts.c.id.in_(account_ids)).with_for_update()
            )
        except DBAPIError as exc:  # lock timeout: the old session is still alive
            raise StoreUnavailableError() from exc
        rows = (
            await conn.execute(
                select(ledger.c.request_id, version.label("version")).where(
                    ledger.c.kind == "charge", ledger.c.request_id.in_(request_ids)
                )
            )
        ).all()
    return {str(r.request_id): int(r.version) for r in rows}


async def void(engine: AsyncEngine, batch: DoubtfulBatch, *, lock_timeout_ms: int) -> int:
    """Refund, once, every charge of ``batch`` that landed; the number refunded."""
    landed = await committed_versions(engine, batch.charges, lock_timeout_ms=lock_timeout_ms)
    refunded = 0
    for charge in batch.charges:
        if charge.request_id not in landed:
            continue
        try:
            async with translated_errors(), engine.begin() as conn:
                await post_entry(
                    conn,
                    account_id=charge.account_id,
                    kind="refund",
                    amount=charge.amount,
                    actor=VOID_ACTOR,
                    reason=VOID_REASON,
                    request_id=charge.request_id,
                    key_id=charge.key_id,
                    model=charge.model,
                    endpoint=charge.endpoint,
                )
            refunded += 1
        except IntegrityError:
            continue  # already refunded (by an operator, or by an earlier attempt)
    return refunded

"""Key store role: digests only, lookups, revocation, limits; on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from bastion.core import keys
from bastion.errors import OperatorError
from bastion.storage.sql.database import Database
from tests.contract.support import new_account


async def test_create_and_look_up_by_digest(database: Database) -> None:
    account = await new_account(database)
    new_key = keys.generate()
    record = await database.keys.create(account, "prod-api-worker", new_key)
    principal = await database.keys.principal_by_digest(new_key.digest)
    assert principal is not None
    assert principal.key == record
    assert principal.account.id == account
    assert record.display_prefix == new_key.secret[:12]
    assert await database.keys.principal_by_digest(keys.generate().digest) is None


async def test_the_secret_is_never_stored(database: Database) -> None:
    from sqlalchemy import select

    from bastion.storage.sql.tables import api_keys

    account = await new_account(database)
    new_key = keys.generate()
    await database.keys.create(account, "k", new_key)
    async with database.engine.connect() as conn:
        rows = (await conn.execute(select(api_keys))).all()
    assert all(new_key.secret not in str(tuple(r)) for r in rows)
    assert any(bytes(r.digest) == new_key.digest for r in rows)


async def test_several_active_keys_and_idempotent_revocation(database: Database) -> None:
    account = await new_account(database)
    old = await database.keys.create(account, "old", keys.generate())
    new = await database.keys.create(account, "new", keys.generate())
    first = await database.keys.revoke(old.id, "rotated")
    again = await database.keys.revoke(old.id, "second reason")
    assert first.revoked_ms is not None
    assert again.revoked_ms == first.revoked_ms
    assert again.revoked_reason == "rotated"
    listed = {k.id: k.is_active for k in await database.keys.list_for(account)}
    assert listed == {old.id: False, new.id: True}
    with pytest.raises(OperatorError):
        await database.keys.revoke("key_missing", "x")


async def test_limits_and_bulk_revalidation(database: Database) -> None:
    account = await new_account(database)
    record = await database.keys.create(account, "k", keys.generate())
    updated = await database.keys.set_limits(
        record.id, rpm_override=5, concurrency_override=2, monthly_spend_cap=1_000_000
    )
    assert (updated.rpm_override, updated.concurrency_override) == (5, 2)
    assert updated.monthly_spend_cap == 1_000_000
    cleared = await database.keys.set_limits(record.id, rpm_override=None)
    assert cleared.rpm_override is None
    found = await database.keys.principals([record.id, "key_missing"])
    assert set(found) == {record.id}
    await database.keys.mark_used({record.id: 1_700_000_000_000})
    assert (await database.keys.get(record.id)).last_used_ms == 1_700_000_000_000  # type: ignore[union-attr]


async def test_changes_are_announced_on_the_feed(database: Database) -> None:
    head = await database.changes.head()
    account = await new_account(database)
    record = await database.keys.create(account, "k", keys.generate())
    await database.keys.revoke(record.id, "x")
    changes = await database.changes.since(head)
    assert [(c.kind, c.key_id) for c in changes] == [("key", record.id), ("key", record.id)]

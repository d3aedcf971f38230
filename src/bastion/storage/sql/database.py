"""The store of record opened as one object: engine plus one repository per table family."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.settings import StorageSettings
from bastion.storage.sql import migrate
from bastion.storage.sql.accounts import SqlAccounts
from bastion.storage.sql.audit import SqlAuditLog
from bastion.storage.sql.changes import SqlChangeFeed
from bastion.storage.sql.engine import create_engine
from bastion.storage.sql.keys import SqlKeyStore
from bastion.storage.sql.ledger import SqlLedger
from bastion.storage.sql.meta import SqlMeta
from bastion.storage.sql.settlements import SqlSettlementWriter
from bastion.storage.sql.sqlite_batch import SqliteBatchWriter


class Database:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        batch_max: int = 512,
        sqlite: SqliteBatchWriter | None = None,
        store_timeout_s: float = 0.5,
    ) -> None:
        self.engine = engine
        self.accounts = SqlAccounts(engine)
        self.keys = SqlKeyStore(engine)
        self.ledger = SqlLedger(engine)
        self.changes = SqlChangeFeed(engine)
        self.audit = SqlAuditLog(engine)
        self.meta = SqlMeta(engine)
        self.settlements = SqlSettlementWriter(
            engine, batch_max=batch_max, sqlite=sqlite, store_timeout_s=store_timeout_s
        )

    @classmethod
    def open(cls, storage: StorageSettings, *, batch_max: int = 512) -> Database:
        sqlite = None
        if storage.is_sqlite:  # the hot write goes straight to the stdlib driver
            path = storage.database_url[len("sqlite:///") :]
            sqlite = SqliteBatchWriter(path, storage.sqlite_synchronous)
        return cls(
            create_engine(storage),
            batch_max=batch_max,
            sqlite=sqlite,
            store_timeout_s=storage.store_timeout_s,
        )

    async def migrate(self) -> tuple[str | None, str]:
        return await migrate.upgrade(self.engine)

    async def is_current(self) -> bool:
        return await migrate.current_revision(self.engine) == migrate.head_revision()

    async def close(self) -> None:
        await self.settlements.close()
        await self.engine.dispose()

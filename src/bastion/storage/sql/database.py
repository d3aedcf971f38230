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
from bastion.storage.sql.pg_batch import PgBatchWriter
from bastion.storage.sql.settlements import SqlSettlementWriter
from bastion.storage.sql.sqlite_batch import SqliteBatchWriter


class Database:
    def __init__(
        self,
        engine: AsyncEngine,
        batches: SqliteBatchWriter | PgBatchWriter,
        *,
        batch_max: int = 512,
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
            engine, batches, batch_max=batch_max, store_timeout_s=store_timeout_s
        )

    @classmethod
    def open(cls, storage: StorageSettings, *, batch_max: int = 512) -> Database:
        # The hot write goes straight to the driver: the stdlib's sqlite3, or asyncpg.
        batches: SqliteBatchWriter | PgBatchWriter
        if storage.is_sqlite:
            path = storage.database_url[len("sqlite:///") :]
            batches = SqliteBatchWriter(path, storage.sqlite_synchronous)
        else:
            batches = PgBatchWriter(
                storage.database_url, timeout_s=max(1.0, storage.store_timeout_s * 4)
            )
        return cls(
            create_engine(storage),
            batches,
            batch_max=batch_max,
            store_timeout_s=storage.store_timeout_s,
        )

    async def migrate(self) -> tuple[str | None, str]:
        return await migrate.upgrade(self.engine)

    async def is_current(self) -> bool:
        return await migrate.current_revision(self.engine) == migrate.head_revision()

    async def close(self) -> None:
        await self.settlements.close()
        await self.engine.dispose()

"""Versioned schema migrations (Alembic), run by ``bastion migrate`` or at start."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from bastion.storage.sql.engine import translated_errors

MIGRATIONS = Path(__file__).with_name("migrations")
MIGRATION_LOCK = 0x62617374  # "bast": the advisory lock id that serialises migrations


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


async def current_revision(engine: AsyncEngine) -> str | None:
    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with translated_errors(), engine.connect() as conn:
        return await conn.run_sync(read)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> tuple[str | None, str]:
    """Bring the schema to ``revision``; returns (before, after)."""
    before = await current_revision(engine)

    def run(connection: Connection) -> None:
        command.upgrade(_config(connection), revision)

    async with translated_errors(), engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # replicas starting together: one migrates, the others wait and find it done
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        await conn.run_sync(run)
    after = await current_revision(engine)
    assert after is not None
    return before, after

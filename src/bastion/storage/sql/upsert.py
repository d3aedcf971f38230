"""``INSERT … ON CONFLICT`` for the dialect an engine speaks (SQLite and PostgreSQL share the
syntax, but SQLAlchemy builds it from each dialect's own ``insert``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection


def insert_for(conn: AsyncConnection, table: Table) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)

"""One schema for SQLite and PostgreSQL (SQLAlchemy Core).  These names are a stable format:
change them only through a migration in ``migrations/versions``.

Times are integer Unix milliseconds; ``day`` (YYYYMMDD, UTC) and ``month`` (YYYYMM, UTC) are
stored beside them so statements group identically on both databases.  Money is integer
micro-USD.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL wants BIGINT.
BigSerial = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("phone", String(32), nullable=False),
    Column("phone_verified", Boolean, nullable=False, default=False),
    Column("tier", String(64), nullable=False),
    Column("status", String(16), nullable=False, default="active"),
    Column("role", String(16), nullable=False, default="customer"),
    Column("password_hash", Text, nullable=True),
    Column("balance", BigInteger, nullable=False, default=0),
    Column("version", BigInteger, nullable=False, default=0),
    Column("low_balance_threshold", BigInteger, nullable=True),
    Column("created_ms", BigInteger, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("account_id", String(32), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("label", String(200), nullable=False),
    Column("digest", LargeBinary(32), nullable=False, unique=True),
    Column("display_prefix", String(16), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("last_used_ms", BigInteger, nullable=True),
    Column("revoked_ms", BigInteger, nullable=True),
    Column("revoked_reason", String(200), nullable=True),
    Column("rpm_override", Integer, nullable=True),
    Column("concurrency_override", Integer, nullable=True),
    Column("monthly_spend_cap", BigInteger, nullable=True),
)

ledger = Table(
    "ledger",
    metadata,
    Column("id", BigSerial, primary_key=True, autoincrement=True),
    Column("account_id", String(32), ForeignKey("accounts.id"), nullable=False),
    Column("key_id", String(32), nullable=True),
    Column("request_id", String(64), nullable=True),
    Column("kind", String(16), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("model", String(200), nullable=True),
    Column("endpoint", String(32), nullable=True),
    Column("usage", Text, nullable=True),
    Column("actor", String(200), nullable=True),
    Column("reason", Text, nullable=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("day", Integer, nullable=False),
    Column("month", Integer, nullable=False),
    UniqueConstraint("request_id", "kind"),
    Index("ix_ledger_account_day", "account_id", "day"),
    Index("ix_ledger_key_month", "key_id", "month"),
)

request_log = Table(
    "request_log",
    metadata,
    Column("id", BigSerial, primary_key=True, autoincrement=True),
    Column("request_id", String(64), nullable=False, unique=True),
    Column("account_id", String(32), nullable=False),
    Column("key_id", String(32), nullable=False),
    Column("model", String(200), nullable=True),
    Column("endpoint", String(32), nullable=False),
    Column("status", Integer, nullable=False),
    Column("usage", Text, nullable=True),
    Column("cost", BigInteger, nullable=False, default=0),
    Column("duration_ms", Integer, nullable=False, default=0),
    Column("created_ms", BigInteger, nullable=False),
    Column("day", Integer, nullable=False),
    Index("ix_request_log_account_created", "account_id", "created_ms"),
)

changes = Table(
    "changes",
    metadata,
    Column("seq", BigSerial, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("account_id", String(32), nullable=True),
    Column("key_id", String(32), nullable=True),
    Column("created_ms", BigInteger, nullable=False),
)
"""A change feed: every process polls it to drop cached keys and reload balances that another
process (the CLI, the dashboard, another replica) changed."""

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigSerial, primary_key=True, autoincrement=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(64), nullable=False),
    Column("account_id", String(32), nullable=True),
    Column("key_id", String(32), nullable=True),
    Column("details", Text, nullable=True),
    Index("ix_audit_log_account_created", "account_id", "created_ms"),
)

# -- the dashboard (migration 0002_dashboard) ---------------------------------------------

server_keys = Table(
    "server_keys",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", LargeBinary(64), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
)
"""Random keys the server generates once and every replica shares (e.g. the dashboard's HMAC
key when ``dashboard.secret`` is not configured)."""

dashboard_sessions = Table(
    "dashboard_sessions",
    metadata,
    Column("digest", LargeBinary(32), primary_key=True),
    Column("account_id", String(32), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("last_seen_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Column("ip", String(64), nullable=True),
    Column("user_agent", String(200), nullable=True),
)
"""Signed-in browsers: only the SHA-256 digest of the session id is stored."""

phone_challenges = Table(
    "phone_challenges",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("purpose", String(16), nullable=False),
    Column("account_id", String(32), ForeignKey("accounts.id"), nullable=False),
    Column("phone", String(32), nullable=False),
    Column("provider", String(32), nullable=False),
    Column("code_digest", LargeBinary(32), nullable=True),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Column("ip", String(64), nullable=True),
    Index("ix_phone_challenges_account_purpose", "account_id", "purpose"),
)
"""One-time codes sent to a phone (sign-up verification, password reset).  Only an HMAC of a
code is stored, and none at all when the SMS provider checks codes itself."""

throttles = Table(
    "throttles",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("window_start_ms", BigInteger, nullable=False),
    Column("hits", Integer, nullable=False),
)
"""Fixed-window counters for sign-in, sign-up and code throttles, shared by every replica."""

low_balance_alerts = Table(
    "low_balance_alerts",
    metadata,
    Column("account_id", String(32), ForeignKey("accounts.id"), primary_key=True),
    Column("threshold", BigInteger, nullable=False),
    Column("balance", BigInteger, nullable=False),
    Column("state", String(16), nullable=False),
    Column("claimed_ms", BigInteger, nullable=False),
    Column("sent_ms", BigInteger, nullable=True),
    Column("channels", String(64), nullable=True),
)
"""An account's low-balance alert since its balance last went below its threshold: a row
means "already alerted" (or being sent) and is removed when the balance is back above."""

meta = Table(
    "meta",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
)
"""Small facts the deployment must remember, e.g. the epoch of the Redis contents last seen
(so an emptied Redis is told apart from a new one)."""

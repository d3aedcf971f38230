"""Plain records passed between storage and the use cases (no behaviour, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bastion.core.frozen import record


@dataclass(frozen=True, slots=True)
class AccountRecord:
    id: str
    email: str
    phone: str
    phone_verified: bool
    tier: str
    status: str
    role: str
    balance: int
    version: int
    created_ms: int
    low_balance_threshold: int | None = None

    @property
    def is_active(self) -> bool:
        return self.status == "active"


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    account_id: str
    label: str
    display_prefix: str
    created_ms: int
    last_used_ms: int | None
    revoked_ms: int | None
    revoked_reason: str | None
    rpm_override: int | None
    concurrency_override: int | None
    monthly_spend_cap: int | None

    @property
    def is_active(self) -> bool:
        return self.revoked_ms is None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "account_id": self.account_id,
            "label": self.label,
            "prefix": self.display_prefix,
            "created_ms": self.created_ms,
            "last_used_ms": self.last_used_ms,
            "status": "active" if self.is_active else "revoked",
            "revoked_ms": self.revoked_ms,
            "revoked_reason": self.revoked_reason,
            "requests_per_minute_override": self.rpm_override,
            "concurrent_requests_override": self.concurrency_override,
            "monthly_spend_cap_micros": self.monthly_spend_cap,
        }


@record
class Principal:
    """Who is calling: the key and the account state that admission needs, as one snapshot."""

    key: KeyRecord
    account: AccountRecord


@dataclass(frozen=True, slots=True)
class Change:
    seq: int
    kind: str
    account_id: str | None
    key_id: str | None


@record
class Charge:
    """One charge to write: the ledger entry of a settled request."""

    request_id: str
    account_id: str
    key_id: str
    amount: int
    model: str
    endpoint: str
    usage: str
    created_ms: int


@record
class RequestLogEntry:
    request_id: str
    account_id: str
    key_id: str
    model: str | None
    endpoint: str
    status: int
    usage: str | None
    cost: int
    duration_ms: int
    created_ms: int

"""Credit use cases: grant, adjust, refund, balances and usage statements."""

from __future__ import annotations

from typing import Any

from bastion.core.money import format_usd, usd_text
from bastion.errors import OperatorError
from bastion.storage.sql.database import Database
from bastion.storage.sql.ledger import Funds


class CreditAdmin:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def grant(self, account_id: str, amount: int, *, actor: str, reason: str = "") -> Funds:
        if amount <= 0:
            raise OperatorError("a grant must be a positive amount")
        funds = await self._db.ledger.post(
            account_id=account_id, kind="grant", amount=amount, actor=actor, reason=reason or None
        )
        await self._db.audit.record(
            actor=actor,
            action="credit.grant",
            account_id=account_id,
            details={"amount_micros": amount, "reason": reason},
        )
        return funds

    async def adjust(self, account_id: str, amount: int, *, actor: str, reason: str) -> Funds:
        if amount == 0:
            raise OperatorError("an adjustment must not be zero")
        if not reason.strip():
            raise OperatorError("an adjustment needs a reason")
        funds = await self._db.ledger.post(
            account_id=account_id, kind="adjustment", amount=amount, actor=actor, reason=reason
        )
        await self._db.audit.record(
            actor=actor,
            action="credit.adjust",
            account_id=account_id,
            details={"amount_micros": amount, "reason": reason},
        )
        return funds

    async def refund(self, request_id: str, *, actor: str, reason: str) -> Funds:
        charge = await self._db.ledger.charge_for(request_id)
        funds = await self._db.ledger.refund(request_id, actor, reason)
        await self._db.audit.record(
            actor=actor,
            action="credit.refund",
            account_id=charge["account_id"] if charge else None,
            details={"request_id": request_id, "reason": reason},
        )
        return funds

    async def balance(self, account_id: str, open_holds: int = 0) -> dict[str, Any]:
        funds = await self._db.ledger.funds(account_id)
        if funds is None:
            raise OperatorError(f"no account {account_id}")
        return {
            "account_id": account_id,
            "balance_micros": funds.balance,
            "balance_usd": usd_text(funds.balance),
            "balance": format_usd(funds.balance),
            "open_holds_micros": open_holds,
            "available_micros": funds.balance - open_holds,
            "ledger_version": funds.version,
        }

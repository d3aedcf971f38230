"""Low-balance alerts: an account's threshold, and the background task that tells it.

Every ``alerts.interval_s`` the task re-arms accounts back above their threshold, then finds
active accounts below it that were not alerted since, claims each one (so that one replica
sends), sends through every configured channel (email to the account's address, and/or a
signed webhook to the operator's endpoint) and records each channel that delivered.  A
failed channel is tried again next round, and only that one: delivery is at least once per
channel (a process that dies between sending and recording may send one message twice).
"""

from __future__ import annotations

import asyncio
import logging
import time

from bastion.core.clock import Clock
from bastion.core.money import format_usd, usd_text
from bastion.core.records import AccountRecord
from bastion.errors import OperatorError, StoreUnavailableError
from bastion.notify.email import SmtpMailer
from bastion.notify.webhook import WebhookSender
from bastion.settings.model import AlertSettings
from bastion.storage.sql.accounts import SqlAccounts
from bastion.storage.sql.alerts import SqlBalanceAlerts
from bastion.storage.sql.audit import SqlAuditLog

log = logging.getLogger("bastion.alerts")

STALE_CLAIM_MS = 10 * 60_000
EVENT = "balance.low"


class LowBalanceAlerts:
    def __init__(
        self,
        store: SqlBalanceAlerts,
        accounts: SqlAccounts,
        audit: SqlAuditLog,
        settings: AlertSettings,
        clock: Clock,
    ) -> None:
        self._store = store
        self._accounts = accounts
        self._audit = audit
        self.settings = settings
        self._clock = clock
        self.mailer = SmtpMailer(settings.email) if settings.email else None
        self.webhook = WebhookSender(settings.webhook) if settings.webhook else None
        self.sent = 0

    def channels(self) -> list[str]:
        return [name for name, c in (("email", self.mailer), ("webhook", self.webhook)) if c]

    def _now(self) -> int:
        return int(self._clock.wall_s() * 1000)

    async def set_threshold(self, account_id: str, threshold: int | None, *, actor: str) -> None:
        """None turns alerts off; any change re-arms the alert."""
        if threshold is not None and threshold < 0:
            raise OperatorError("a threshold cannot be negative")
        await self._accounts.update(account_id, low_balance_threshold=threshold)
        await self._store.clear(account_id)
        await self._audit.record(
            actor=actor,
            action="account.low_balance_threshold",
            account_id=account_id,
            details={"threshold_micros": threshold},
        )

    async def run_once(self) -> int:
        now = self._now()
        await self._store.rearm(now - STALE_CLAIM_MS)
        sent = 0
        for due in await self._store.due():
            if not await self._store.claim(due, now):
                continue  # another replica has it
            account = due.account
            delivered = list(due.delivered)
            try:
                for channel in self.channels():
                    if channel not in delivered:
                        await self._deliver(channel, account)
                        delivered.append(channel)
                        await self._store.delivered(account.id, delivered)
            except Exception as exc:  # any channel failure: retry the rest next round
                log.warning(
                    "low-balance alert not delivered",
                    extra={"account_id": account.id, "reason": str(exc)},
                )
                await self._store.failed(account.id)
                continue
            await self._store.sent(account.id, self._now())
            sent += 1
        self.sent += sent
        return sent

    async def _deliver(self, channel: str, account: AccountRecord) -> None:
        threshold = account.low_balance_threshold or 0
        if channel == "email" and self.mailer is not None:
            await self.mailer.send(
                account.email,
                f"Your balance is below {format_usd(threshold)}",
                f"The balance of your account {account.id} is {format_usd(account.balance)}, "
                f"below the alert threshold of {format_usd(threshold)} that you set.\n\n"
                "Requests are refused once the balance cannot cover them. Add credit to keep "
                "your keys working.\n",
            )
        elif channel == "webhook" and self.webhook is not None:
            await self.webhook.send(
                {
                    "type": EVENT,
                    "created": int(time.time()),
                    "account_id": account.id,
                    "email": account.email,
                    "balance_micros": account.balance,
                    "balance_usd": usd_text(account.balance),
                    "threshold_micros": threshold,
                    "threshold_usd": usd_text(threshold),
                }
            )

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.interval_s)
            try:
                await self.run_once()
            except StoreUnavailableError:
                log.warning("low-balance alerts: store unavailable")
            except Exception:  # a bug must not end the task for the life of the process
                log.exception("low-balance alerts failed")

    async def close(self) -> None:
        if self.webhook is not None:
            await self.webhook.close()

"""The dashboard's use cases wired together: sign-up, sessions, phone codes, password resets,
low-balance alerts, and the read models its pages show.

Built by the composition root (:class:`bastion.runtime.Runtime`) next to the CLI's use cases
(KeyAdmin, CreditAdmin, AccountAdmin), which the dashboard shares: revoking a key from a page
is the same call as ``bastion keys revoke``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging

from bastion.admin.accounts import AccountAdmin
from bastion.admin.alerts import LowBalanceAlerts
from bastion.admin.credits import CreditAdmin
from bastion.admin.keys import KeyAdmin
from bastion.admin.reset import PasswordReset
from bastion.admin.sessions import Sessions
from bastion.admin.signup import Signup
from bastion.admin.throttle import Throttle
from bastion.admin.verification import CODE_TTL_MS, PhoneVerification
from bastion.core.clock import Clock
from bastion.errors import StoreUnavailableError
from bastion.notify.sms import ConsoleSms, SmsProvider
from bastion.notify.twilio import TwilioVerify
from bastion.settings import Settings
from bastion.settings.model import SmsSettings
from bastion.storage.sql.alerts import SqlBalanceAlerts
from bastion.storage.sql.challenges import SqlChallenges
from bastion.storage.sql.credentials import SqlCredentials
from bastion.storage.sql.database import Database
from bastion.storage.sql.server_keys import SqlServerKeys
from bastion.storage.sql.sessions import SqlSessions
from bastion.storage.sql.throttles import SqlThrottles
from bastion.storage.sql.usage import SqlUsage

log = logging.getLogger("bastion.dashboard")

HOUSEKEEPING_INTERVAL_S = 600.0
KEEP_THROTTLES_MS = 2 * 24 * 3600_000


def sms_provider(settings: SmsSettings) -> SmsProvider:
    if settings.provider == "twilio_verify":
        assert settings.twilio is not None  # the settings reader requires it
        return TwilioVerify(settings.twilio)
    return ConsoleSms()


class DashboardServices:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        clock: Clock,
        *,
        keys: KeyAdmin,
        credits: CreditAdmin,
        accounts: AccountAdmin,
        sms: SmsProvider | None = None,
    ) -> None:
        engine = db.engine
        self.db = db
        self.settings = settings
        self.clock = clock
        self.keys = keys
        self.credits = credits
        self.accounts = accounts
        self.usage = SqlUsage(engine)
        self.credentials = SqlCredentials(engine)
        self.challenges = SqlChallenges(engine)
        self._server_keys = SqlServerKeys(engine)
        self._sessions = SqlSessions(engine)
        self._throttles = SqlThrottles(engine)
        self._alert_store = SqlBalanceAlerts(engine)
        self._key: bytes | None = None
        self.throttle = Throttle(self._throttles, clock)
        self.sms = sms or sms_provider(settings.sms)
        self.verification = PhoneVerification(
            self.challenges,
            self.throttle,
            self.sms,
            settings.sms,
            lambda: self.subkey("otp"),
            clock,
        )
        self.signup = Signup(
            accounts,
            db.accounts,
            self.verification,
            self.challenges,
            self.throttle,
            settings.dashboard,
            settings.sms,
        )
        self.sessions = Sessions(
            self._sessions, self.credentials, db.audit, self.throttle, settings.dashboard, clock
        )
        self.reset = PasswordReset(
            self.credentials,
            self.challenges,
            self.verification,
            self.throttle,
            settings.dashboard,
        )
        self.alerts = LowBalanceAlerts(
            self._alert_store, db.accounts, db.audit, settings.alerts, clock
        )

    async def start(self) -> None:
        """Load the HMAC key (configured, or generated once and shared through the store)."""
        secret = self.settings.dashboard.secret
        if secret is not None:
            self._key = hashlib.sha256(b"bastion-dashboard:" + secret.value.encode()).digest()
        else:
            self._key = await self._server_keys.get_or_create("dashboard")
        dashboard = self.settings.dashboard
        if isinstance(self.sms, ConsoleSms) and dashboard.enabled and dashboard.signup:
            log.warning(
                "sms.provider is console: verification codes are written to this log "
                "(development only; configure twilio_verify for real phones)"
            )

    def subkey(self, purpose: str) -> bytes:
        """A key for one purpose (``csrf``, ``otp``), derived from the dashboard key."""
        if self._key is None:
            raise RuntimeError("the dashboard is not started (Runtime.start() loads its key)")
        return hmac.new(self._key, purpose.encode(), hashlib.sha256).digest()

    async def housekeeping(self) -> None:
        """Forget expired sessions, old codes and stale counters now and then."""
        while True:
            await asyncio.sleep(HOUSEKEEPING_INTERVAL_S)
            now = int(self.clock.wall_s() * 1000)
            try:
                await self._sessions.prune(now, self.sessions.idle_ms)
                await self.challenges.prune(now - CODE_TTL_MS * 6 * 24)
                await self._throttles.prune(now - KEEP_THROTTLES_MS)
            except StoreUnavailableError:
                log.warning("dashboard housekeeping: store unavailable")

    async def close(self) -> None:
        await self.sms.close()
        await self.alerts.close()

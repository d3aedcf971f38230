"""Phone verification by one-time code: send, check, and the limits around both.

The rules (reliability research §3.5, and what Twilio Verify itself enforces):
- 6 digits from :mod:`secrets`, valid 10 minutes, at most 5 checks, single use;
- only the latest code of an account and purpose is live (sending supersedes the others);
- only an HMAC of the code is stored (keyed by the server's dashboard key, so a database
  dump alone cannot test guesses), none at all with a provider that checks codes itself;
- sends limited per number (per 10 minutes), per client address (per hour) and per country
  (per UTC day); checks limited per client address (per hour) besides the 5 per code;
- a sign-up number must be in the operator's country allowlist, checked before any provider
  is called.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from bastion.admin.forms import FormError
from bastion.admin.throttle import MINUTE_MS, Limit, Throttle
from bastion.core.calendar import day_of
from bastion.core.clock import Clock
from bastion.core.keys import new_id
from bastion.core.phone import region_of
from bastion.core.records import AccountRecord
from bastion.errors import BastionError
from bastion.notify.sms import HostedVerifier, SmsProvider
from bastion.settings.model import SmsSettings
from bastion.storage.sql.challenges import (
    APPROVED,
    EXHAUSTED,
    PENDING,
    SUPERSEDED,
    Challenge,
    SqlChallenges,
)

log = logging.getLogger("bastion.verification")

CODE_DIGITS = 6
CODE_TTL_MS = 10 * MINUTE_MS
MAX_CHECKS = 5
SIGNUP = "signup"
RESET = "reset"
FAILED = "failed"


class Outcome(StrEnum):
    APPROVED = "approved"
    WRONG = "wrong"
    MALFORMED = "malformed"
    EXPIRED = "expired"
    EXHAUSTED = "exhausted"
    SUPERSEDED = "superseded"
    USED = "used"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class CheckResult:
    outcome: Outcome
    challenge: Challenge | None
    checks_left: int = 0

    @property
    def approved(self) -> bool:
        return self.outcome is Outcome.APPROVED

    def message(self) -> str:
        """What to tell someone who is signed in and typed a code for their own number."""
        if self.outcome is Outcome.WRONG:
            if self.checks_left <= 0:
                return "That code is not right, and it cannot be tried again: send a new code."
            tries = "1 try" if self.checks_left == 1 else f"{self.checks_left} tries"
            return f"That code is not right; {tries} left."
        return {
            Outcome.MALFORMED: "Enter the 6-digit code from the text message.",
            Outcome.EXPIRED: "This code has expired: send a new code.",
            Outcome.EXHAUSTED: "Too many wrong codes: send a new code.",
            Outcome.SUPERSEDED: "A newer code was sent: use the latest text message.",
            Outcome.USED: "This code was already used.",
            Outcome.UNKNOWN: "There is no code to check: send a new code.",
        }.get(self.outcome, "")


def normalise_code(text: str) -> str | None:
    digits = "".join(ch for ch in text if not ch.isspace() and ch != "-")
    if len(digits) != CODE_DIGITS or not digits.isascii() or not digits.isdigit():
        return None
    return digits


class PhoneVerification:
    def __init__(
        self,
        challenges: SqlChallenges,
        throttle: Throttle,
        provider: SmsProvider,
        settings: SmsSettings,
        hmac_key: Callable[[], bytes],
        clock: Clock,
    ) -> None:
        self._challenges = challenges
        self._throttle = throttle
        self.provider = provider
        self._settings = settings
        self._hmac_key = hmac_key
        self._clock = clock
        self.per_number = Limit(
            "sms-number",
            settings.sends_per_number,
            10 * MINUTE_MS,
            "Too many codes were sent to this number.",
        )
        self.per_ip = Limit(
            "sms-ip", settings.sends_per_ip, 60 * MINUTE_MS, "Too many codes were requested."
        )
        self.per_country = Limit(
            "sms-country",
            settings.daily_sends_per_country,
            24 * 60 * MINUTE_MS,
            "Sign-up by phone is paused for this country.",
        )
        self.checks_per_ip = Limit(
            "otp-check-ip", settings.checks_per_ip, 60 * MINUTE_MS, "Too many codes were tried."
        )

    def _now(self) -> int:
        return int(self._clock.wall_s() * 1000)

    def _digest(self, challenge_id: str, code: str) -> bytes:
        return hmac.new(
            self._hmac_key(), f"{challenge_id}:{code}".encode(), hashlib.sha256
        ).digest()

    def check_country(self, e164: str, field: str = "phone") -> None:
        """Refuse a number outside the allowlist (before anything is sent or stored)."""
        region = region_of(e164)
        if region is None or region not in self._settings.allowed_countries:
            if not self._settings.allowed_countries:
                raise FormError.field(field, "Sign-up by phone is not open on this server.")
            raise FormError.field(
                field, f"Phone numbers from {region or 'this region'} cannot sign up here."
            )

    async def count_send(self, phone: str, ip: str) -> None:
        """Count one send against every limit; RateLimitedError past any of them."""
        await self._throttle.hit(self.per_ip, ip)
        await self._throttle.hit(self.per_number, phone)
        await self._throttle.hit(self.per_country, f"{region_of(phone)}:{day_of(self._now())}")

    async def send(
        self, account: AccountRecord, purpose: str, ip: str, *, counted: bool = False
    ) -> Challenge:
        """Send a fresh code to the account's phone; the account's older codes stop working.

        Raises RateLimitedError past a limit (unless the caller ``counted`` this send already),
        FormError outside the allowlist (sign-up), and ServiceUnavailableError when the
        provider cannot be reached."""
        phone = account.phone
        if purpose == SIGNUP:
            self.check_country(phone)
        if not counted:
            await self.count_send(phone, ip)
        now = self._now()
        challenge_id = new_id("chal")
        hosted = isinstance(self.provider, HostedVerifier)
        code = None if hosted else f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
        challenge = Challenge(
            id=challenge_id,
            purpose=purpose,
            account_id=account.id,
            phone=phone,
            provider=self.provider.name,
            code_digest=None if code is None else self._digest(challenge_id, code),
            status=PENDING,
            attempts=0,
            created_ms=now,
            expires_ms=now + CODE_TTL_MS,
        )
        await self._challenges.open(challenge, ip)
        try:
            if isinstance(self.provider, HostedVerifier):
                await self.provider.start(phone)
            else:
                assert code is not None
                await self.provider.deliver(phone, code)
        except BastionError:
            await self._challenges.set_status(challenge_id, FAILED)
            raise
        log.info(
            "verification code sent",
            extra={"account_id": account.id, "purpose": purpose, "provider": self.provider.name},
        )
        return challenge

    async def check(self, challenge_id: str, typed: str, ip: str) -> CheckResult:
        """Count and check one typed code.  Approval itself is the caller's, in the same
        transaction as what the code unlocks (see :class:`SqlChallenges`)."""
        code = normalise_code(typed)
        if code is None:
            return CheckResult(Outcome.MALFORMED, None)
        await self._throttle.hit(self.checks_per_ip, ip)
        counted, challenge = await self._challenges.count_check(
            challenge_id, MAX_CHECKS, self._now()
        )
        if challenge is None:
            return CheckResult(Outcome.UNKNOWN, None)
        if not counted:
            return CheckResult(self._why_not(challenge), challenge)
        if challenge.code_digest is not None:
            right = hmac.compare_digest(challenge.code_digest, self._digest(challenge.id, code))
        elif isinstance(self.provider, HostedVerifier):
            right = await self.provider.check(challenge.phone, code)
        else:
            right = False  # a hosted challenge while a local provider is configured
        if right:
            return CheckResult(Outcome.APPROVED, challenge)
        left = MAX_CHECKS - challenge.attempts
        if left <= 0:
            await self._challenges.set_status(challenge.id, EXHAUSTED)
        return CheckResult(Outcome.WRONG, challenge, checks_left=left)

    def _why_not(self, challenge: Challenge) -> Outcome:
        if challenge.status == APPROVED:
            return Outcome.USED
        if challenge.status == SUPERSEDED:
            return Outcome.SUPERSEDED
        if challenge.status == EXHAUSTED or challenge.attempts >= MAX_CHECKS:
            return Outcome.EXHAUSTED
        if challenge.status == PENDING and challenge.expires_ms <= self._now():
            return Outcome.EXPIRED
        return Outcome.UNKNOWN

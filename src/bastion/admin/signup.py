"""Self-service sign-up: an account with a password and an unverified phone, then a code.

Everything that can be checked without writing is checked first and reported together, so a
refused sign-up writes nothing.  The account starts with ``phone_verified = false``: the API
refuses its keys and KeyAdmin refuses to make any until the code is checked.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bastion.admin.accounts import AccountAdmin, check_email
from bastion.admin.forms import FormError
from bastion.admin.passwords import check_new_password, hash_password
from bastion.admin.throttle import MINUTE_MS, Limit, Throttle
from bastion.admin.verification import SIGNUP, CheckResult, Outcome, PhoneVerification
from bastion.core.phone import PhoneError, normalise
from bastion.core.records import AccountRecord
from bastion.errors import BastionError, OperatorError
from bastion.settings.model import DashboardSettings, SmsSettings
from bastion.storage.sql.accounts import SqlAccounts
from bastion.storage.sql.challenges import Challenge, SqlChallenges

log = logging.getLogger("bastion.signup")


@dataclass(frozen=True, slots=True)
class SignedUp:
    account: AccountRecord
    challenge: Challenge | None
    send_error: str | None
    """Why the first code could not be sent (the account exists; the person can resend)."""


class Signup:
    def __init__(
        self,
        accounts: AccountAdmin,
        account_store: SqlAccounts,
        verification: PhoneVerification,
        challenges: SqlChallenges,
        throttle: Throttle,
        settings: DashboardSettings,
        sms: SmsSettings,
    ) -> None:
        self._accounts = accounts
        self._account_store = account_store
        self._verification = verification
        self._challenges = challenges
        self._sms = sms
        self._throttle = throttle
        self._settings = settings
        self.per_ip = Limit(
            "signup-ip", settings.signups_per_ip, 60 * MINUTE_MS, "Too many sign-ups from here."
        )

    async def register(
        self, *, email: str, password: str, password_confirm: str, phone: str, ip: str
    ) -> SignedUp:
        if not self._settings.signup:
            raise FormError.field("_form", "Sign-up is closed on this server.")
        errors: dict[str, str] = {}
        try:
            email = check_email(email)
        except OperatorError:
            errors["email"] = "Enter an email address, like name@example.com."
        try:
            check_new_password(
                password,
                password_confirm,
                email=email,
                min_length=self._settings.min_password_length,
            )
        except FormError as exc:
            errors.update(exc.errors)
        e164 = ""
        try:
            e164 = normalise(phone.strip())
        except PhoneError:
            errors["phone"] = (
                "Enter a mobile number in international form, with + and the country code "
                "(like +44 7700 900123)."
            )
        if e164:
            try:
                self._verification.check_country(e164)
            except FormError as exc:
                errors.update(exc.errors)
        if "email" not in errors and await self._account_store.by_email(email) is not None:
            errors["email"] = (
                "An account with this email already exists: sign in, or reset its password."
            )
        if errors:
            raise FormError(errors)
        await self._throttle.hit(self.per_ip, ip)
        # Counted before the account exists: a sign-up whose code may not be sent writes nothing.
        await self._verification.count_send(e164, ip)
        try:
            account = await self._accounts.create(
                email=email,
                phone=e164,
                tier=None,
                actor="signup",
                role="customer",
                phone_verified=False,
                password_hash=await hash_password(password),
            )
        except OperatorError:
            # the email was taken between the check and the insert
            raise FormError.field(
                "email", "An account with this email already exists: sign in instead."
            ) from None
        try:
            challenge = await self._verification.send(account, SIGNUP, ip, counted=True)
        except BastionError as exc:
            log.warning("first code not sent", extra={"account_id": account.id})
            return SignedUp(account, None, exc.message)
        return SignedUp(account, challenge, None)

    async def resend(self, account: AccountRecord, ip: str) -> Challenge:
        if account.phone_verified:
            raise FormError.field("_form", "This phone number is already verified.")
        return await self._verification.send(account, SIGNUP, ip)

    async def confirm(
        self, account: AccountRecord, typed: str, ip: str
    ) -> tuple[CheckResult, AccountRecord | None]:
        """Check a typed code against the account's latest sign-up code; on success the
        phone is verified (and the account may create keys)."""
        challenge = await self._challenges.latest(account.id, SIGNUP)
        if challenge is None:
            return CheckResult(Outcome.UNKNOWN, None), None
        result = await self._verification.check(challenge.id, typed, ip)
        if not result.approved or result.challenge is None:
            return result, None
        taken = await self._challenges.verified_elsewhere(account.phone, account.id)
        if taken >= self._sms.max_accounts_per_phone:
            raise FormError.field(
                "code",
                "This phone number is already verified on another account: sign in to that "
                "account, or sign up again with another number.",
            )
        try:
            updated = await self._challenges.approve_phone(
                result.challenge, actor=f"account:{account.id}"
            )
        except OperatorError:
            return CheckResult(Outcome.USED, result.challenge), None
        return result, updated

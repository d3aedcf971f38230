"""Password reset through the account's verified phone.

Asking for a reset answers the same whatever the email (no account enumeration): an unknown
email, an unverified phone or a refused send all get a decoy challenge id that no code will
ever match, and checking a code says only "not right or expired", never how many tries are
left.  The new password, the approval and the end of every session commit together.
"""

from __future__ import annotations

import logging

from bastion.admin.forms import FormError
from bastion.admin.passwords import check_new_password, hash_password
from bastion.admin.throttle import MINUTE_MS, Limit, Throttle
from bastion.admin.verification import RESET, PhoneVerification
from bastion.core.keys import new_id
from bastion.errors import BastionError, OperatorError
from bastion.settings.model import DashboardSettings
from bastion.storage.sql.challenges import SqlChallenges
from bastion.storage.sql.credentials import SqlCredentials

log = logging.getLogger("bastion.reset")

NOT_RIGHT = (
    "That code is not right, or it has expired. Use the latest text message, or ask for a new code."
)


class PasswordReset:
    def __init__(
        self,
        credentials: SqlCredentials,
        challenges: SqlChallenges,
        verification: PhoneVerification,
        throttle: Throttle,
        settings: DashboardSettings,
    ) -> None:
        self._credentials = credentials
        self._challenges = challenges
        self._verification = verification
        self._throttle = throttle
        self._settings = settings
        self.per_email = Limit("reset-email", 5, 60 * MINUTE_MS, "Too many reset requests.")

    async def request(self, email: str, ip: str) -> str:
        """Send a code if the email has an account with a verified phone; returns a challenge
        id either way."""
        email = email.strip()
        if "@" not in email:
            raise FormError.field("email", "Enter the email address of your account.")
        await self._throttle.hit(self._verification.per_ip, ip)
        await self._throttle.hit(self.per_email, email.lower())
        found = await self._credentials.by_email(email)
        if found is not None and found[0].phone_verified:
            try:
                challenge = await self._verification.send(found[0], RESET, ip)
            except BastionError as exc:
                log.warning(
                    "reset code not sent",
                    extra={"account_id": found[0].id, "reason": type(exc).__name__},
                )
            else:
                return challenge.id
        return new_id("chal")

    async def confirm(
        self, challenge_id: str, code: str, password: str, password_confirm: str, ip: str
    ) -> str:
        """Set the new password; returns the account id."""
        # Checked the same for every challenge id, real or decoy (so without the account's
        # email): a rule that only fires for real accounts would tell them apart.
        check_new_password(
            password, password_confirm, email="", min_length=self._settings.min_password_length
        )
        result = await self._verification.check(challenge_id, code, ip)
        if not result.approved or result.challenge is None or result.challenge.purpose != RESET:
            raise FormError.field("code", NOT_RIGHT)
        try:
            await self._challenges.approve_reset(
                result.challenge,
                await hash_password(password),
                actor=f"account:{result.challenge.account_id}",
            )
        except OperatorError:
            raise FormError.field("code", NOT_RIGHT) from None
        return result.challenge.account_id

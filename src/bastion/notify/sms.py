"""SMS providers for phone verification, in the two shapes providers come in.

- A :class:`CodeSender` only delivers text: Bastion makes the code, keeps its HMAC and
  checks it (the console provider for development).
- A :class:`HostedVerifier` makes, sends and checks the code itself (Twilio Verify): Bastion
  never sees the code it sends, and asks the provider whether a typed code is right.

Either way Bastion keeps the challenge (expiry, check count, latest-code-only), so the same
limits hold whichever provider is configured.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import ClassVar

log = logging.getLogger("bastion.sms.console")


class CodeSender(ABC):
    name: ClassVar[str]

    @abstractmethod
    async def deliver(self, phone: str, code: str) -> None:
        """Send ``code`` to ``phone`` (E.164)."""

    async def close(self) -> None:
        return None


class HostedVerifier(ABC):
    name: ClassVar[str]

    @abstractmethod
    async def start(self, phone: str) -> None:
        """Have the provider send a fresh code to ``phone``."""

    @abstractmethod
    async def check(self, phone: str, code: str) -> bool:
        """Whether ``code`` is the provider's live code for ``phone``."""

    async def close(self) -> None:
        return None


SmsProvider = CodeSender | HostedVerifier


class ConsoleSms(CodeSender):
    """Development: the code goes to the log (logger ``bastion.sms.console``) and nowhere else.

    This is the one place a one-time code is written anywhere, on purpose: it lets a
    developer (and the test suite) sign up without a phone.  Never configure it in production.
    """

    name = "console"

    async def deliver(self, phone: str, code: str) -> None:
        # The code is in the message text (not a ``code`` field, which log redaction masks).
        log.info(
            "verification code for %s: %s (console SMS provider, development only)", phone, code
        )

"""Email through an SMTP server (STARTTLS, implicit TLS, or plain to a loopback relay).

The standard library's client runs in a worker thread: alerts are rare and off the request
path, so a thread per message costs nothing that matters and adds no dependency.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage

from bastion.errors import ServiceUnavailableError
from bastion.settings.model import SmtpSettings


class SmtpMailer:
    def __init__(self, settings: SmtpSettings) -> None:
        self._settings = settings

    async def send(self, to: str, subject: str, text: str) -> None:
        message = EmailMessage()
        message["From"] = self._settings.from_address
        message["To"] = to
        message["Subject"] = subject
        message.set_content(text)
        try:
            await asyncio.to_thread(self._send, message)
        except (smtplib.SMTPException, OSError) as exc:
            raise ServiceUnavailableError(f"email delivery failed: {type(exc).__name__}") from None

    def _send(self, message: EmailMessage) -> None:
        s = self._settings
        client: smtplib.SMTP
        if s.security == "tls":
            client = smtplib.SMTP_SSL(
                s.host, s.port, timeout=s.timeout_s, context=ssl.create_default_context()
            )
        else:
            client = smtplib.SMTP(s.host, s.port, timeout=s.timeout_s)
        with client:
            if s.security == "starttls":
                client.starttls(context=ssl.create_default_context())
            if s.username and s.password is not None:
                client.login(s.username, s.password.value)
            client.send_message(message)

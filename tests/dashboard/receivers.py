"""Local receivers for what Bastion sends out: an SMTP server (aiosmtpd, in the test's event
loop), a webhook endpoint, and a fake of Twilio Verify's HTTP API."""

from __future__ import annotations

import asyncio
import base64
import secrets
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiohttp import web
from aiosmtpd.smtp import SMTP, Envelope, Session

from bastion.notify.webhook import SIGNATURE_HEADER, verify


class Mailbox:
    """An aiosmtpd handler that keeps every message."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.recipients: list[list[str]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        self.messages.append(message_from_bytes(content))
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 Message accepted"


async def start_smtp() -> tuple[asyncio.Server, int, Mailbox]:
    mailbox = Mailbox()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(mailbox, hostname="bastion-test", ident="test"), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    return server, port, mailbox


@dataclass
class Hooks:
    secret: str
    received: list[dict[str, Any]] = field(default_factory=list)
    refused_signatures: int = 0
    fail_next: int = 0


def webhook_app(hooks: Hooks) -> web.Application:
    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        if not verify(hooks.secret, request.headers.get(SIGNATURE_HEADER, ""), body):
            hooks.refused_signatures += 1
            return web.Response(status=401)
        if hooks.fail_next:
            hooks.fail_next -= 1
            return web.Response(status=503)
        hooks.received.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", receive)
    return app


@dataclass
class FakeTwilio:
    """Twilio Verify as its HTTP API behaves: form-encoded requests with basic auth, JSON
    answers, a pending verification per number for 10 minutes, 5 checks, 404 when none."""

    account_sid: str = "AC" + "0" * 32
    auth_token: str = "test-auth-token"
    service_sid: str = "VA" + "1" * 32
    codes: dict[str, str] = field(default_factory=dict)
    checks: dict[str, int] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    unauthorized: int = 0
    down: bool = False

    def _authorized(self, request: web.Request) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return request.headers.get("Authorization") == f"Basic {expected}"

    def app(self) -> web.Application:
        async def verifications(request: web.Request) -> web.Response:
            return await self._handle(request, self._start)

        async def check(request: web.Request) -> web.Response:
            return await self._handle(request, self._check)

        app = web.Application()
        base = f"/v2/Services/{self.service_sid}"
        app.router.add_post(f"{base}/Verifications", verifications)
        app.router.add_post(f"{base}/VerificationCheck", check)
        return app

    async def _handle(self, request: web.Request, action: Any) -> web.Response:
        if self.down:
            return web.json_response({"code": 20500, "message": "Internal"}, status=500)
        if not self._authorized(request):
            self.unauthorized += 1
            return web.json_response({"code": 20003, "message": "Authenticate"}, status=401)
        assert request.content_type == "application/x-www-form-urlencoded"
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.requests.append((request.path.rsplit("/", 1)[1], form))
        response: web.Response = action(form)
        return response

    def _start(self, form: dict[str, str]) -> web.Response:
        to = form["To"]
        if form.get("Channel") != "sms":
            return web.json_response({"code": 60200, "message": "Invalid parameter"}, status=400)
        if to.startswith("+1500"):  # a number Twilio will not text (landline, say)
            return web.json_response({"code": 60205, "message": "Landline"}, status=400)
        self.codes[to] = f"{secrets.randbelow(10**6):06d}"
        self.checks[to] = 0
        return web.json_response(
            {
                "sid": "VE" + secrets.token_hex(16),
                "to": to,
                "channel": "sms",
                "status": "pending",
                "valid": False,
            },
            status=201,
        )

    def _check(self, form: dict[str, str]) -> web.Response:
        to = form["To"]
        if to not in self.codes:
            return web.json_response({"code": 20404, "message": "Not found"}, status=404)
        self.checks[to] += 1
        if self.checks[to] > 5:
            return web.json_response({"code": 60202, "message": "Max check attempts"}, status=429)
        if form.get("Code") == self.codes[to]:
            del self.codes[to]
            return web.json_response({"to": to, "status": "approved", "valid": True})
        return web.json_response({"to": to, "status": "pending", "valid": False})


async def start_app(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"

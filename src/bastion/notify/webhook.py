"""Webhooks signed with HMAC-SHA256, in the shape receivers already know from Stripe:

    Bastion-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>

The timestamp is signed too, so a receiver can refuse replays older than a few minutes
(:func:`verify` does, with a 5-minute tolerance).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import aiohttp
import orjson

from bastion.errors import ServiceUnavailableError
from bastion.settings.model import WebhookSettings

SIGNATURE_HEADER = "Bastion-Signature"
TOLERANCE_S = 300


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes, now_s: float | None = None) -> bool:
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    now = time.time() if now_s is None else now_s
    if abs(now - timestamp) > TOLERANCE_S:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


class WebhookSender:
    def __init__(self, settings: WebhookSettings) -> None:
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None

    async def send(self, event: dict[str, Any]) -> None:
        body = orjson.dumps(event)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self._settings.secret.value, int(time.time()), body),
            "User-Agent": "Bastion-Webhook/1",
        }
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._settings.timeout_s)
            )
        try:
            async with self._session.post(
                self._settings.url, data=body, headers=headers, allow_redirects=False
            ) as response:
                if not 200 <= response.status < 300:
                    raise ServiceUnavailableError(f"webhook answered {response.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ServiceUnavailableError(f"webhook unreachable: {type(exc).__name__}") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

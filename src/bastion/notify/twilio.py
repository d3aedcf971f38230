"""Twilio Verify over its HTTP API: form-encoded requests, JSON answers, basic auth with the
account SID and auth token.

``POST {base}/v2/Services/{service}/Verifications`` (``To``, ``Channel=sms``) sends a code;
``POST {base}/v2/Services/{service}/VerificationCheck`` (``To``, ``Code``) answers
``status: approved`` when the code is right and ``pending`` when it is not.  A 404 there means
no live verification (expired, already approved, or out of attempts).
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp

from bastion.errors import InvalidRequestError, RateLimitedError, ServiceUnavailableError
from bastion.notify.sms import HostedVerifier
from bastion.settings.model import TwilioSettings

log = logging.getLogger("bastion.sms.twilio")

UNAVAILABLE = "The SMS provider could not be reached; try again in a minute."


class TwilioVerify(HostedVerifier):
    name = "twilio_verify"

    def __init__(self, settings: TwilioSettings) -> None:
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None
        self._base = f"{settings.base_url}/v2/Services/{settings.service_sid}"

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            credentials = aiohttp.encode_basic_auth(
                self._settings.account_sid, self._settings.auth_token.value
            )
            self._session = aiohttp.ClientSession(
                headers={"Authorization": credentials},
                timeout=aiohttp.ClientTimeout(total=self._settings.timeout_s),
            )
        return self._session

    async def _post(self, path: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        try:
            async with self._client().post(
                f"{self._base}/{path}", data=form, allow_redirects=False
            ) as response:
                try:
                    body = await response.json(content_type=None)
                except ValueError:
                    body = {}
                return response.status, body if isinstance(body, dict) else {}
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("twilio verify unreachable", extra={"error": type(exc).__name__})
            raise ServiceUnavailableError(UNAVAILABLE) from None

    async def start(self, phone: str) -> None:
        status, body = await self._post("Verifications", {"To": phone, "Channel": "sms"})
        if status in (200, 201) and body.get("status") == "pending":
            return
        error_code = body.get("code")
        if status == 429:
            raise RateLimitedError("Too many codes were sent to this number; try again later.")
        if 400 <= status < 500 and status not in (401, 403, 404):
            log.info("twilio verify refused a number", extra={"twilio_code": error_code})
            raise InvalidRequestError("This phone number cannot receive verification codes.")
        log.warning("twilio verify failed", extra={"status": status, "twilio_code": error_code})
        raise ServiceUnavailableError(UNAVAILABLE)

    async def check(self, phone: str, code: str) -> bool:
        status, body = await self._post("VerificationCheck", {"To": phone, "Code": code})
        if status == 200:
            return body.get("status") == "approved"
        if status in (404, 429):
            return False  # no live verification, or the provider's own attempt limit
        log.warning("twilio verify check failed", extra={"status": status})
        raise ServiceUnavailableError(UNAVAILABLE)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

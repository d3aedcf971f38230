"""Sign-up verification through Twilio Verify's HTTP API (a local fake speaking it): the
provider makes and checks the code, Bastion keeps the challenge and its limits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from bastion.storage.sql.tables import phone_challenges
from tests.dashboard.receivers import FakeTwilio, start_app
from tests.dashboard.support import PASSWORD, Browserless
from tests.support.harness import Stack

PHONE = "+14155550123"


@pytest.fixture
async def twilio() -> AsyncIterator[tuple[FakeTwilio, str]]:
    fake = FakeTwilio()
    runner, url = await start_app(fake.app())
    yield fake, url
    await runner.cleanup()


@pytest.fixture
def config(twilio: tuple[FakeTwilio, str]) -> dict[str, Any]:
    fake, url = twilio
    return {
        "dashboard": {"secret": "test-dashboard-secret-0123456789abcdef"},
        "sms": {
            "provider": "twilio_verify",
            "twilio": {
                "account_sid": fake.account_sid,
                "auth_token": fake.auth_token,
                "service_sid": fake.service_sid,
                "base_url": url,
            },
        },
    }


async def _sign_up(dash: Browserless, phone: str = PHONE) -> Any:
    await dash.get("/dashboard/signup")
    return await dash.post(
        "/dashboard/signup",
        {
            "email": "t@example.com",
            "password": PASSWORD,
            "password_confirm": PASSWORD,
            "phone": phone,
        },
    )


async def test_verification_through_twilio(
    stack: Stack, dash: Browserless, twilio: tuple[FakeTwilio, str]
) -> None:
    fake, _ = twilio
    page = await _sign_up(dash)
    assert page.url.endswith("/dashboard/verify")
    assert fake.requests == [("Verifications", {"To": PHONE, "Channel": "sms"})]
    assert fake.unauthorized == 0
    async with stack.runtime.db.engine.connect() as conn:
        row = (await conn.execute(select(phone_challenges))).one()
    assert row.provider == "twilio_verify"
    assert row.code_digest is None  # Bastion never knew the code
    wrong = f"{(int(fake.codes[PHONE]) + 1) % 1_000_000:06d}"
    page = await dash.post("/dashboard/verify", {"code": wrong})
    assert page.status == 400
    assert "That code is not right; 4 tries left." in page.errors
    page = await dash.post("/dashboard/verify", {"code": fake.codes[PHONE]})
    assert page.has("Your phone number is verified")
    assert fake.requests[-1][0] == "VerificationCheck"
    assert set(fake.requests[-1][1]) == {"To", "Code"}
    account = await stack.runtime.db.accounts.by_email("t@example.com")
    assert account is not None
    assert account.phone_verified


async def test_bastion_counts_checks_before_asking_twilio(
    stack: Stack, dash: Browserless, twilio: tuple[FakeTwilio, str]
) -> None:
    fake, _ = twilio
    await _sign_up(dash)
    code = fake.codes[PHONE]
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(5):
        await dash.post("/dashboard/verify", {"code": wrong})
    checks = sum(1 for kind, _ in fake.requests if kind == "VerificationCheck")
    page = await dash.post("/dashboard/verify", {"code": code})
    assert any("Too many wrong codes" in e for e in page.errors)
    assert sum(1 for kind, _ in fake.requests if kind == "VerificationCheck") == checks == 5


async def test_provider_failures_are_explained(
    stack: Stack, dash: Browserless, twilio: tuple[FakeTwilio, str]
) -> None:
    fake, _ = twilio
    page = await _sign_up(dash, "+15005550006")  # the fake will not text this number
    assert page.url.endswith("/dashboard/verify?notice=code_not_sent")
    page = await dash.post("/dashboard/verify/resend")
    assert page.status == 400
    assert any("cannot receive verification codes" in e for e in page.errors)
    fake.down = True
    page = await dash.post("/dashboard/verify/resend")
    assert page.status == 503
    assert any("could not be reached" in e for e in page.errors)


async def test_wrong_credentials_are_refused_by_twilio(
    stack: Stack, dash: Browserless, twilio: tuple[FakeTwilio, str]
) -> None:
    fake, _ = twilio
    fake.auth_token = "rotated"
    page = await _sign_up(dash)
    assert page.url.endswith("notice=code_not_sent")
    assert fake.unauthorized == 1

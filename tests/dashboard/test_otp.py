"""One-time codes: 6 digits, 10 minutes, 5 checks, latest only, single use, hashed at rest,
send limits per number, per address and per country, the country allowlist."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from sqlalchemy import select, text, update

from bastion.storage.sql.tables import phone_challenges
from tests.dashboard.support import PASSWORD, Browserless, SmsInbox, sign_up
from tests.support.harness import Stack

PHONE = "+14155550123"


async def _start(dash: Browserless, email: str = "new@example.com", phone: str = PHONE) -> None:
    await dash.get("/dashboard/signup")
    page = await dash.post(
        "/dashboard/signup",
        {"email": email, "password": PASSWORD, "password_confirm": PASSWORD, "phone": phone},
    )
    assert page.url.endswith("/dashboard/verify"), page.errors


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def _challenges(stack: Stack) -> list[Any]:
    async with stack.runtime.db.engine.connect() as conn:
        return list(
            (
                await conn.execute(select(phone_challenges).order_by(phone_challenges.c.created_ms))
            ).all()
        )


async def test_five_wrong_codes_and_even_the_right_one_is_refused(
    stack: Stack, dash: Browserless, inbox: SmsInbox
) -> None:
    await _start(dash)
    code = inbox.code_for(PHONE)
    assert re.fullmatch(r"\d{6}", code)
    page = await dash.post("/dashboard/verify", {"code": "12ab"})  # malformed: not counted
    assert page.errors == ["Enter the 6-digit code from the text message."] * 2
    for left in (4, 3, 2, 1):
        page = await dash.post("/dashboard/verify", {"code": _wrong(code)})
        tries = "1 try" if left == 1 else f"{left} tries"
        assert f"That code is not right; {tries} left." in page.errors
    page = await dash.post("/dashboard/verify", {"code": _wrong(code)})
    assert any("cannot be tried again" in e for e in page.errors)
    page = await dash.post("/dashboard/verify", {"code": code})
    assert page.status == 400
    assert any("Too many wrong codes" in e for e in page.errors)
    (row,) = await _challenges(stack)
    assert row.status == "exhausted"
    assert row.attempts == 5
    account = await stack.runtime.db.accounts.by_email("new@example.com")
    assert account is not None
    assert not account.phone_verified


async def test_codes_expire_after_ten_minutes(
    stack: Stack, dash: Browserless, inbox: SmsInbox
) -> None:
    await _start(dash)
    (row,) = await _challenges(stack)
    assert row.expires_ms - row.created_ms == 10 * 60_000
    async with stack.runtime.db.engine.begin() as conn:
        await conn.execute(update(phone_challenges).values(expires_ms=row.created_ms))
    page = await dash.post("/dashboard/verify", {"code": inbox.code_for(PHONE)})
    assert any("expired" in e for e in page.errors)


async def test_only_the_latest_code_works_and_only_once(
    stack: Stack, dash: Browserless, inbox: SmsInbox
) -> None:
    await _start(dash)
    first = inbox.code_for(PHONE)
    page = await dash.post("/dashboard/verify/resend")
    assert page.has("A new code is on its way")
    second = inbox.code_for(PHONE)
    assert inbox.count(PHONE) == 2
    if first != second:
        page = await dash.post("/dashboard/verify", {"code": first})
        assert page.status == 400, "an older code must not work"
    page = await dash.post("/dashboard/verify", {"code": second})
    assert page.has("Your phone number is verified")
    statuses = [r.status for r in await _challenges(stack)]
    assert statuses == ["superseded", "approved"]
    # single use: the approved challenge cannot be checked again
    verification = stack.runtime.dashboard.verification
    result = await verification.check((await _challenges(stack))[1].id, second, "127.0.0.1")
    assert result.outcome == "used"


async def test_codes_are_hashed_at_rest_and_only_the_console_provider_shows_them(
    stack: Stack, dash: Browserless, inbox: SmsInbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await _start(dash)
    code = inbox.code_for(PHONE)
    (row,) = await _challenges(stack)
    assert row.code_digest is not None
    assert len(row.code_digest) == 32
    async with stack.runtime.db.engine.connect() as conn:
        tables = [
            r[0]
            for r in (
                await conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))
            ).all()
        ]
        for table in tables:
            for r in (await conn.execute(text(f'SELECT * FROM "{table}"'))).all():
                assert code not in repr(tuple(r)), table
                assert PASSWORD not in repr(tuple(r)), table
    carriers = {rec.name for rec in caplog.records if code in rec.getMessage()}
    assert carriers == {"bastion.sms.console"}
    assert not any(PASSWORD in rec.getMessage() for rec in caplog.records)


async def test_send_limit_per_number(stack: Stack, dash: Browserless, inbox: SmsInbox) -> None:
    await _start(dash)
    await dash.post("/dashboard/verify/resend")
    await dash.post("/dashboard/verify/resend")
    assert inbox.count(PHONE) == 3
    page = await dash.post("/dashboard/verify/resend")
    assert page.status == 429
    assert any("Too many codes were sent to this number" in e for e in page.errors)
    assert inbox.count(PHONE) == 3  # nothing was sent
    # the code already sent still works
    page = await dash.post("/dashboard/verify", {"code": inbox.code_for(PHONE)})
    assert page.has("Your phone number is verified")


class TestPerAddress:
    @pytest.fixture
    def config(self) -> dict[str, Any]:
        return {
            "dashboard": {"secret": "test-dashboard-secret-0123456789abcdef"},
            "sms": {"sends_per_ip": 3},
        }

    async def test_send_limit_per_address(
        self, stack: Stack, dash: Browserless, inbox: SmsInbox
    ) -> None:
        await _start(dash, "a@example.com", "+33612345601")
        await dash.post("/dashboard/signout")
        await _start(dash, "b@example.com", "+33612345602")
        await dash.post("/dashboard/verify/resend")
        page = await dash.post("/dashboard/verify/resend")
        assert page.status == 429
        assert any("Too many codes were requested" in e for e in page.errors)
        await dash.post("/dashboard/signout")
        # a sign-up whose code could not be sent is refused whole: no account is left behind
        await dash.get("/dashboard/signup")
        page = await dash.post(
            "/dashboard/signup",
            {
                "email": "c@example.com",
                "password": PASSWORD,
                "password_confirm": PASSWORD,
                "phone": "+33612345603",
            },
        )
        assert page.status == 429
        assert any("Too many codes were requested" in e for e in page.errors)
        assert await stack.runtime.db.accounts.by_email("c@example.com") is None
        assert inbox.count() == 3


class TestPerCountry:
    @pytest.fixture
    def config(self) -> dict[str, Any]:
        return {
            "dashboard": {"secret": "test-dashboard-secret-0123456789abcdef"},
            "sms": {"daily_sends_per_country": 2},
        }

    async def test_daily_cap_per_country(
        self, stack: Stack, dash: Browserless, inbox: SmsInbox
    ) -> None:
        await _start(dash, "a@example.com", "+14155550101")
        await dash.post("/dashboard/verify/resend")
        page = await dash.post("/dashboard/verify/resend")
        assert page.status == 429
        assert any("paused for this country" in e for e in page.errors)
        await dash.post("/dashboard/signout")
        await _start(dash, "b@example.com", "+33612345601")  # another country still works
        assert inbox.count("+33612345601") == 1


async def test_one_number_verifies_one_account(
    stack: Stack, dash: Browserless, other: Browserless, inbox: SmsInbox
) -> None:
    await sign_up(dash, inbox, email="first@example.com", phone=PHONE)
    await _start(other, "second@example.com", PHONE)  # same response as any sign-up
    page = await other.post("/dashboard/verify", {"code": inbox.code_for(PHONE)})
    assert page.status == 400
    assert any("already verified on another account" in e for e in page.errors)
    account = await stack.runtime.db.accounts.by_email("second@example.com")
    assert account is not None
    assert not account.phone_verified

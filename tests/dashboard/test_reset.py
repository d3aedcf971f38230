"""Password reset through the verified phone, without telling who has an account."""

from __future__ import annotations

import re

from sqlalchemy import select

from bastion.storage.sql.tables import phone_challenges
from tests.dashboard.conftest import customer_with_password
from tests.dashboard.support import PASSWORD, Browserless, Page, SmsInbox, sign_in
from tests.support.harness import Stack

NEW = "a completely new passphrase"
STACK_PHONE = "+14155550100"  # the harness's accounts


def _comparable(page: Page) -> str:
    """The page without what differs between any two requests (ids and tokens)."""
    text = re.sub(r"chal_[0-9a-f]+", "chal_", page.text)
    return re.sub(r"[A-Za-z0-9_-]{43}", "<token>", text).replace(page.url, "")


async def _request(dash: Browserless, email: str) -> Page:
    await dash.get("/dashboard/reset")
    return await dash.post("/dashboard/reset", {"email": email})


async def test_reset_through_the_phone(
    stack: Stack, dash: Browserless, other: Browserless, inbox: SmsInbox
) -> None:
    await customer_with_password(stack, "a@example.com")
    await sign_in(other, "a@example.com")
    page = await _request(dash, "a@example.com")
    assert "/dashboard/reset/confirm?c=chal_" in page.url
    code = inbox.code_for(STACK_PHONE)
    page = await dash.post(
        "/dashboard/reset/confirm",
        {
            "challenge": page.url.split("c=")[1],
            "code": code,
            "password": NEW,
            "password_confirm": NEW,
        },
    )
    assert page.url.endswith("/dashboard/signin?notice=password_reset")
    assert "/dashboard/signin" in (await other.get("/dashboard/keys")).url  # sessions ended
    assert (await sign_in(dash, "a@example.com", PASSWORD)).status == 400
    assert (await sign_in(dash, "a@example.com", NEW)).url.endswith("/dashboard/")
    audit = await stack.runtime.db.audit.list(action="account.password_reset")
    assert len(audit) == 1


async def test_same_answer_for_unknown_and_known_emails(
    stack: Stack, dash: Browserless, other: Browserless, inbox: SmsInbox
) -> None:
    await customer_with_password(stack, "a@example.com")
    known = await _request(dash, "a@example.com")
    unknown = await _request(other, "nobody@example.com")
    assert known.status == unknown.status == 200
    assert _comparable(known) == _comparable(unknown)
    assert inbox.count() == 1
    # a wrong code answers the same too, and never says how many tries are left
    answers = []
    for browser, page in ((dash, known), (other, unknown)):
        answer = await browser.post(
            "/dashboard/reset/confirm",
            {
                "challenge": page.url.split("c=")[1],
                "code": "000000",
                "password": NEW,
                "password_confirm": NEW,
            },
        )
        answers.append(answer)
    assert answers[0].status == answers[1].status == 400
    assert answers[0].errors == answers[1].errors
    assert not any("tries" in e for e in answers[0].errors)


async def test_bad_new_password_does_not_use_up_the_code(
    stack: Stack, dash: Browserless, inbox: SmsInbox
) -> None:
    await customer_with_password(stack, "a@example.com")
    page = await _request(dash, "a@example.com")
    challenge = page.url.split("c=")[1]
    code = inbox.code_for(STACK_PHONE)
    for password, confirm, message in (
        ("short", "short", "at least 12"),
        (NEW, "something else entirely", "not the same"),
        ("123456789012", "123456789012", "too easy"),
    ):
        page = await dash.post(
            "/dashboard/reset/confirm",
            {
                "challenge": challenge,
                "code": code,
                "password": password,
                "password_confirm": confirm,
            },
        )
        assert page.status == 400, page.errors
        assert any(message in e for e in page.errors), page.errors
    async with stack.runtime.db.engine.connect() as conn:
        attempts = (await conn.execute(select(phone_challenges.c.attempts))).scalar_one()
    assert attempts == 0
    page = await dash.post(
        "/dashboard/reset/confirm",
        {"challenge": challenge, "code": code, "password": NEW, "password_confirm": NEW},
    )
    assert page.url.endswith("notice=password_reset")


async def test_an_account_made_by_the_cli_gets_its_first_password(
    stack: Stack, dash: Browserless, inbox: SmsInbox
) -> None:
    await stack.account(email="cli@example.com")  # operator-made: verified, no password
    assert (await sign_in(dash, "cli@example.com", "anything at all here")).status == 400
    page = await _request(dash, "cli@example.com")
    page = await dash.post(
        "/dashboard/reset/confirm",
        {
            "challenge": page.url.split("c=")[1],
            "code": inbox.code_for(STACK_PHONE),
            "password": NEW,
            "password_confirm": NEW,
        },
    )
    assert (await sign_in(dash, "cli@example.com", NEW)).url.endswith("/dashboard/")


async def test_reset_request_bad_input(stack: Stack, dash: Browserless) -> None:
    page = await _request(dash, "not an email")
    assert page.status == 400
    assert page.errors
    page = await dash.get("/dashboard/reset/confirm?c=<script>")
    assert page.url.endswith("/dashboard/reset")

"""Sign-up and phone verification through the dashboard's forms."""

from __future__ import annotations

import openai
import pytest

from tests.dashboard.support import PASSWORD, Browserless, SmsInbox, sign_up
from tests.support.harness import Stack

PHONE = "+14155550123"


async def test_sign_up_verify_and_create_a_key(
    stack: Stack, dash: Browserless, inbox: SmsInbox
) -> None:
    await sign_up(dash, inbox, email="new@example.com", phone=PHONE)
    account = await stack.runtime.db.accounts.by_email("new@example.com")
    assert account is not None
    assert account.phone_verified
    assert account.role == "customer"
    await dash.get("/dashboard/keys")
    page = await dash.post("/dashboard/keys", {"label": "first"})
    assert page.status == 200
    assert page.has("you will not see this key again")
    secret = page.text.split('id="new-key" class="secret__value" type="text" value="')[1][:42]
    await stack.runtime.credits.grant(account.id, 1_000_000, actor="test")
    models = await stack.client(secret).models.list()
    assert models.data


async def test_unverified_account_cannot_create_keys_or_call_the_api(
    stack: Stack, dash: Browserless, inbox: SmsInbox
) -> None:
    await dash.get("/dashboard/signup")
    page = await dash.post(
        "/dashboard/signup",
        {
            "email": "u@example.com",
            "password": PASSWORD,
            "password_confirm": PASSWORD,
            "phone": PHONE,
        },
    )
    assert page.url.endswith("/dashboard/verify")
    # the keys page sends an unverified account back to the code
    page = await dash.get("/dashboard/keys")
    assert page.url.endswith("/dashboard/verify")
    page = await dash.post("/dashboard/keys", {"label": "sneaky"})
    assert page.url.endswith("/dashboard/verify")
    account = await stack.runtime.db.accounts.by_email("u@example.com")
    assert account is not None
    assert not account.phone_verified
    assert await stack.runtime.db.keys.list_for(account.id) == []
    # the use case refuses too, whichever door is used
    with pytest.raises(Exception, match="not verified"):
        await stack.runtime.keys.create(account.id, "x", actor="test")
    # and a key made behind its back (directly in the store) is refused by the API
    from bastion.core import keys as key_format

    made = key_format.generate()
    await stack.runtime.db.keys.create(account.id, "raw", made)
    with pytest.raises(openai.AuthenticationError):
        await stack.client(made.secret).models.list()


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({"email": "not-an-email"}, "email", "Enter an email address"),
        ({"password": "short", "password_confirm": "short"}, "password", "at least 12"),
        ({"password_confirm": "something else entirely"}, "password_confirm", "not the same"),
        ({"password": "password1234", "password_confirm": "password1234"}, "password", "too easy"),
        ({"phone": "12345"}, "phone", "international form"),
        ({"phone": "+8613800138000"}, "phone", "CN cannot sign up"),
    ],
)
async def test_bad_sign_up_input_writes_nothing(
    stack: Stack,
    dash: Browserless,
    inbox: SmsInbox,
    form: dict[str, str],
    field: str,
    message: str,
) -> None:
    good = {
        "email": "ok@example.com",
        "password": PASSWORD,
        "password_confirm": PASSWORD,
        "phone": PHONE,
    }
    await dash.get("/dashboard/signup")
    page = await dash.post("/dashboard/signup", {**good, **form})
    assert page.status == 400
    assert any(message in e for e in page.errors), page.errors
    assert f'id="f-{field}"' in page.text
    assert 'aria-invalid="true"' in page.text
    assert await stack.runtime.db.accounts.search("") == []
    assert inbox.count() == 0  # the provider was never asked (allowlist before sending)


async def test_email_already_taken(stack: Stack, dash: Browserless, inbox: SmsInbox) -> None:
    await stack.account(email="taken@example.com")
    await dash.get("/dashboard/signup")
    page = await dash.post(
        "/dashboard/signup",
        {
            "email": "TAKEN@example.com",
            "password": PASSWORD,
            "password_confirm": PASSWORD,
            "phone": PHONE,
        },
    )
    assert page.status == 400
    assert any("already exists" in e for e in page.errors)
    assert inbox.count() == 0


async def test_signup_closed_by_configuration(stack: Stack, dash: Browserless) -> None:
    from dataclasses import replace

    runtime = stack.runtime
    closed = replace(runtime.settings.dashboard, signup=False)
    runtime.dashboard.signup._settings = closed
    await dash.get("/dashboard/signup")
    page = await dash.post(
        "/dashboard/signup",
        {
            "email": "x@example.com",
            "password": PASSWORD,
            "password_confirm": PASSWORD,
            "phone": PHONE,
        },
    )
    assert page.status == 400
    assert any("closed" in e for e in page.errors)

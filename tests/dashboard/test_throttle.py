"""Sign-in throttles: per account (email) and per client address, with a generic message."""

from __future__ import annotations

from typing import Any

import pytest

from tests.dashboard.conftest import customer_with_password
from tests.dashboard.support import PASSWORD, Browserless, sign_in
from tests.support.harness import Stack


@pytest.fixture
def config() -> dict[str, Any]:
    return {
        "dashboard": {
            "secret": "test-dashboard-secret-0123456789abcdef",
            "signin_attempts_per_account": 3,
            "signin_attempts_per_ip": 6,
        }
    }


async def test_wrong_passwords_get_one_generic_message(stack: Stack, dash: Browserless) -> None:
    await customer_with_password(stack, "a@example.com")
    known = await sign_in(dash, "a@example.com", "not the password at all")
    unknown = await sign_in(dash, "nobody@example.com", "not the password at all")
    assert known.status == unknown.status == 400
    assert known.errors == unknown.errors == ["The email or password is not correct."]
    assert known.has('value="a@example.com"')
    assert "not the password" not in known.text


async def test_per_account_throttle(stack: Stack, dash: Browserless, other: Browserless) -> None:
    await customer_with_password(stack, "a@example.com")
    for _ in range(3):
        assert (await sign_in(dash, "a@example.com", "wrong password, sorry")).status == 400
    page = await sign_in(dash, "a@example.com", PASSWORD)  # even the right one now
    assert page.status == 429
    assert any("Too many sign-in attempts for this account" in e for e in page.errors)
    assert "__Host-bastion_session" not in dash.cookies
    # the email is throttled whoever asks (case does not matter)
    assert (await sign_in(other, "A@Example.com", PASSWORD)).status == 429


async def test_success_clears_the_account_counter(stack: Stack, dash: Browserless) -> None:
    await customer_with_password(stack, "a@example.com")
    for _ in range(2):
        await sign_in(dash, "a@example.com", "wrong password, sorry")
    assert (await sign_in(dash, "a@example.com")).url.endswith("/dashboard/")
    await dash.post("/dashboard/signout")
    for _ in range(2):
        assert (await sign_in(dash, "a@example.com", "wrong password, sorry")).status == 400
    assert (await sign_in(dash, "a@example.com")).url.endswith("/dashboard/")


async def test_per_address_throttle(stack: Stack, dash: Browserless) -> None:
    await customer_with_password(stack, "a@example.com")
    for i in range(6):
        assert (await sign_in(dash, f"user{i}@example.com", "wrong password, sorry")).status == 400
    page = await sign_in(dash, "a@example.com", PASSWORD)
    assert page.status == 429
    assert any("from here" in e for e in page.errors)

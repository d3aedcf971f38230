"""Every state-changing dashboard request needs the session's CSRF token and a same-origin
Origin; a refused one changes nothing."""

from __future__ import annotations

import pytest

from tests.dashboard.conftest import customer_with_password
from tests.dashboard.support import Browserless, sign_in
from tests.support.harness import Stack


@pytest.fixture
async def signed_in(stack: Stack, dash: Browserless) -> str:
    account = await customer_with_password(stack, "a@example.com")
    await sign_in(dash, "a@example.com")
    await dash.get("/dashboard/keys")
    return account.id


@pytest.mark.parametrize(
    ("csrf", "origin", "headers"),
    [
        (False, True, {}),  # no token
        ("forged-token", True, {}),  # wrong token
        (True, False, {}),  # no Origin (nor Referer)
        (True, "https://evil.example", {}),  # another site
        (True, "null", {}),  # an opaque origin (sandboxed frame, data: URL)
        (True, True, {"Sec-Fetch-Site": "cross-site"}),
        (True, True, {"Sec-Fetch-Site": "same-site"}),  # a sibling subdomain
    ],
)
async def test_refused_changes_change_nothing(
    stack: Stack,
    dash: Browserless,
    signed_in: str,
    csrf: str | bool,
    origin: str | bool,
    headers: dict[str, str],
) -> None:
    page = await dash.post(
        "/dashboard/keys", {"label": "csrf"}, csrf=csrf, origin=origin, headers=headers
    )
    assert page.status == 403
    assert page.has("This form has expired")
    assert await stack.runtime.db.keys.list_for(signed_in) == []


async def test_the_htmx_header_carries_the_token(
    stack: Stack, dash: Browserless, signed_in: str
) -> None:
    page = await dash.get("/dashboard/keys")
    assert f'hx-headers=\'{{"X-CSRF-Token": "{dash.csrf}"}}\'' in page.text
    page = await dash.post(
        "/dashboard/keys",
        {"label": "via-htmx"},
        csrf=False,
        headers={"X-CSRF-Token": dash.csrf or "", "HX-Request": "true"},
    )
    assert page.status == 200
    assert page.has("you will not see this key again")


async def test_referer_stands_in_for_a_missing_origin(
    stack: Stack, dash: Browserless, signed_in: str
) -> None:
    page = await dash.post(
        "/dashboard/keys",
        {"label": "referer"},
        origin=False,
        headers={"Referer": f"{stack.url}/dashboard/keys"},
    )
    assert page.status == 200
    assert len(await stack.runtime.db.keys.list_for(signed_in)) == 1


async def test_one_sessions_token_is_worthless_in_another(
    stack: Stack, dash: Browserless, other: Browserless, signed_in: str
) -> None:
    await customer_with_password(stack, "b@example.com")
    await sign_in(other, "b@example.com")
    await other.get("/dashboard/keys")
    assert other.csrf != dash.csrf
    page = await other.post("/dashboard/keys", {"label": "x"}, csrf=dash.csrf)
    assert page.status == 403


async def test_the_token_changes_when_the_session_rotates(
    stack: Stack, dash: Browserless, signed_in: str
) -> None:
    old = dash.csrf
    await dash.post("/dashboard/signout")
    await sign_in(dash, "a@example.com")
    await dash.get("/dashboard/keys")
    assert dash.csrf != old
    page = await dash.post("/dashboard/keys", {"label": "stale"}, csrf=old)
    assert page.status == 403


async def test_sign_in_forms_are_protected_too(stack: Stack, dash: Browserless) -> None:
    """Login CSRF: a form posted from elsewhere cannot sign the browser into an account."""
    await customer_with_password(stack, "a@example.com")
    await dash.get("/dashboard/signin")
    page = await dash.post(
        "/dashboard/signin",
        {"email": "a@example.com", "password": "correct horse battery staple"},
        origin="https://evil.example",
    )
    assert page.status == 403
    # a pre-session token from another browser does not fit this browser's cookie
    page = await dash.post(
        "/dashboard/signin",
        {"email": "a@example.com", "password": "correct horse battery staple"},
        csrf="x" * 43,
    )
    assert page.status == 403
    # without any pre-session cookie (a blind cross-site post) there is nothing to match
    dash.cookies.clear()
    page = await dash.post(
        "/dashboard/signin", {"email": "a@example.com", "password": "x"}, csrf="y" * 43
    )
    assert page.status == 403
    assert "__Host-bastion_session" not in dash.cookies


async def test_sign_out_needs_the_token(stack: Stack, dash: Browserless, signed_in: str) -> None:
    page = await dash.post("/dashboard/signout", csrf=False)
    assert page.status == 403
    assert "/dashboard/signin" not in (await dash.get("/dashboard/keys")).url

"""Sessions: cookie flags, rotation, expiry, sign-out, password change; the API never takes a
session cookie and the dashboard never takes an API key."""

from __future__ import annotations

import hashlib
from http.cookies import SimpleCookie

import aiohttp
from sqlalchemy import select, update

from bastion.storage.sql.tables import dashboard_sessions
from tests.dashboard.conftest import customer_with_password
from tests.dashboard.support import PASSWORD, Browserless, sign_in
from tests.support.harness import Stack

SESSION = "__Host-bastion_session"
PRE = "__Host-bastion_pre"


def _cookie(lines: list[str], name: str) -> tuple[str, dict[str, str | bool]]:
    for line in lines:
        jar: SimpleCookie = SimpleCookie()
        jar.load(line)
        if name in jar and jar[name].value:
            return line, dict(jar[name])
    raise AssertionError(f"no Set-Cookie for {name} in {lines}")


async def _sessions(stack: Stack) -> list[bytes]:
    async with stack.runtime.db.engine.connect() as conn:
        rows = (await conn.execute(select(dashboard_sessions.c.digest))).all()
    return [bytes(r[0]) for r in rows]


async def test_session_cookie_flags_and_storage(stack: Stack, dash: Browserless) -> None:
    await customer_with_password(stack, "a@example.com")
    page = await dash.get("/dashboard/signin")
    line, pre = _cookie(page.set_cookies, PRE)
    assert pre["secure"]
    assert pre["httponly"]
    assert pre["samesite"] == "Lax"
    assert pre["path"] == "/"
    assert "Domain" not in line
    page = await sign_in(dash, "a@example.com")
    assert page.status == 200
    assert page.url.endswith("/dashboard/")
    line, attrs = _cookie(page.set_cookies, SESSION)
    assert attrs["secure"]
    assert attrs["httponly"]
    assert attrs["path"] == "/"
    assert attrs["samesite"] == "Lax"
    assert "Domain" not in line
    assert not attrs["max-age"]
    token = dash.cookies[SESSION]
    assert len(token) >= 43  # 256 bits, base64url
    # only the digest is stored, never the id itself
    assert await _sessions(stack) == [hashlib.sha256(token.encode()).digest()]
    assert PRE not in dash.cookies  # the pre-session is over
    for name in ("Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options"):
        assert name in page.headers
    assert page.headers["Cache-Control"] == "no-store"


async def test_sign_in_rotates_the_session_id(stack: Stack, dash: Browserless) -> None:
    await customer_with_password(stack, "a@example.com")
    await sign_in(dash, "a@example.com")
    first = dash.cookies[SESSION]
    await dash.get("/dashboard/")
    # signing in again (e.g. from a planted cookie) makes a new id and ends the old one
    dash.csrf = None
    page = await dash.get("/dashboard/signin")  # signed in: redirected to the overview
    assert page.url.endswith("/dashboard/")
    page = await dash.post("/dashboard/signin", {"email": "a@example.com", "password": PASSWORD})
    second = dash.cookies[SESSION]
    assert second != first
    stored = await _sessions(stack)
    assert hashlib.sha256(first.encode()).digest() not in stored
    assert hashlib.sha256(second.encode()).digest() in stored


async def test_a_fixated_session_cookie_is_not_adopted(
    stack: Stack, dash: Browserless, other: Browserless
) -> None:
    await customer_with_password(stack, "a@example.com")
    other.cookies[SESSION] = "attacker-chosen-value"
    page = await sign_in(other, "a@example.com")
    assert other.cookies[SESSION] != "attacker-chosen-value"
    assert page.url.endswith("/dashboard/")


async def test_sign_out_ends_the_session(stack: Stack, dash: Browserless) -> None:
    await customer_with_password(stack, "a@example.com")
    await sign_in(dash, "a@example.com")
    token = dash.cookies[SESSION]
    page = await dash.post("/dashboard/signout")
    assert page.url.endswith("/dashboard/signin?notice=signed_out")
    assert page.has("signed out")
    assert SESSION not in dash.cookies
    assert await _sessions(stack) == []
    dash.cookies[SESSION] = token  # replaying the old cookie does not help
    page = await dash.get("/dashboard/keys")
    assert "/dashboard/signin" in page.url


async def test_idle_and_absolute_expiry(stack: Stack, dash: Browserless) -> None:
    await customer_with_password(stack, "a@example.com")
    await sign_in(dash, "a@example.com")
    token = dash.cookies[SESSION]
    digest = hashlib.sha256(token.encode()).digest()
    idle_ms = stack.runtime.settings.dashboard.session_idle_minutes * 60_000
    async with stack.runtime.db.engine.begin() as conn:
        await conn.execute(
            update(dashboard_sessions)
            .where(dashboard_sessions.c.digest == digest)
            .values(last_seen_ms=dashboard_sessions.c.last_seen_ms - idle_ms - 1000)
        )
    page = await dash.get("/dashboard/keys")
    assert "/dashboard/signin" in page.url
    assert await _sessions(stack) == []  # and it is forgotten
    # absolute: active all along, but signed in too long ago
    await sign_in(dash, "a@example.com")
    digest = hashlib.sha256(dash.cookies[SESSION].encode()).digest()
    async with stack.runtime.db.engine.begin() as conn:
        await conn.execute(
            update(dashboard_sessions)
            .where(dashboard_sessions.c.digest == digest)
            .values(expires_ms=dashboard_sessions.c.created_ms)
        )
    page = await dash.get("/dashboard/keys")
    assert "/dashboard/signin" in page.url


async def test_password_change_ends_every_other_session(
    stack: Stack, dash: Browserless, other: Browserless
) -> None:
    await customer_with_password(stack, "a@example.com")
    await sign_in(dash, "a@example.com")
    await sign_in(other, "a@example.com")
    before = dash.cookies[SESSION]
    await dash.get("/dashboard/account")
    new = "a brand new passphrase here"
    page = await dash.post(
        "/dashboard/account/password",
        {"current_password": PASSWORD, "new_password": new, "new_password_confirm": new},
    )
    assert page.status == 200
    assert page.has("Your password was changed")
    assert dash.cookies[SESSION] != before  # this browser got a fresh session
    assert "/dashboard/signin" in (await other.get("/dashboard/keys")).url
    assert (await sign_in(other, "a@example.com", PASSWORD)).status == 400
    assert (await sign_in(other, "a@example.com", new)).url.endswith("/dashboard/")


async def test_password_change_bad_input(stack: Stack, dash: Browserless) -> None:
    await customer_with_password(stack, "a@example.com")
    await sign_in(dash, "a@example.com")
    await dash.get("/dashboard/account")
    cases = [
        ({"current_password": "wrong password!!"}, "not your current password"),
        ({"new_password": "short", "new_password_confirm": "short"}, "at least 12"),
        ({"new_password_confirm": "different thing altogether"}, "not the same"),
        ({"new_password": PASSWORD, "new_password_confirm": PASSWORD}, "not used here"),
    ]
    good = {
        "current_password": PASSWORD,
        "new_password": "another fine passphrase",
        "new_password_confirm": "another fine passphrase",
    }
    token = dash.cookies[SESSION]
    for change, message in cases:
        page = await dash.post("/dashboard/account/password", {**good, **change})
        assert page.status == 400, (change, page.errors)
        assert any(message in e for e in page.errors), (change, page.errors)
    assert dash.cookies[SESSION] == token  # nothing changed: same session, same password
    assert (await sign_in(dash, "a@example.com", PASSWORD)).url.endswith("/dashboard/")


async def test_the_api_never_accepts_a_session_cookie(stack: Stack, dash: Browserless) -> None:
    await customer_with_password(stack, "a@example.com")
    await sign_in(dash, "a@example.com")
    cookie = f"{SESSION}={dash.cookies[SESSION]}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{stack.url}/v1/models", headers={"Cookie": cookie}) as r:
            assert r.status == 401
            assert (await r.json())["error"]["code"] == "invalid_api_key"
        async with http.post(
            f"{stack.url}/v1/chat/completions",
            headers={"Cookie": cookie, "Origin": stack.url},
            json={"model": "gpt-oss-120b", "messages": [{"role": "user", "content": "hi"}]},
        ) as r:
            assert r.status == 401


async def test_the_dashboard_never_accepts_an_api_key(stack: Stack, dash: Browserless) -> None:
    account = await customer_with_password(stack, "a@example.com")
    key = await stack.key(account.id)
    bearer = {"Authorization": f"Bearer {key}"}
    for path in ("/dashboard/", "/dashboard/keys", "/dashboard/usage.csv"):
        page = await dash.get(path, headers=bearer)
        assert "/dashboard/signin" in page.url, path
    page = await dash.get("/dashboard/signin")
    page = await dash.post("/dashboard/keys", {"label": "via-api-key"}, headers=bearer)
    assert "/dashboard/signin" in page.url
    assert len(await stack.runtime.db.keys.list_for(account.id)) == 1


async def test_root_redirects_to_the_dashboard(stack: Stack, dash: Browserless) -> None:
    page = await dash.get("/")
    assert page.url.endswith("/dashboard/signin?next=/dashboard/")
    page = await dash.get("/dashboard")
    assert page.url.endswith("/dashboard/signin?next=/dashboard/")
    assert (await dash.get("/dashboard/nowhere")).status == 404
    page = await dash.get("/dashboard/static/htmx.min.js")
    assert page.status == 200
    assert "immutable" in page.headers["Cache-Control"]
    assert page.text.startswith("/*! htmx 2.0.11")

"""A small browser stand-in for functional tests of the dashboard (no JavaScript): it keeps
cookies by hand (so every Set-Cookie can be inspected), sends the page's CSRF token and a
same-origin ``Origin`` like a browser form post, and reads codes from the console SMS log."""

from __future__ import annotations

import html
import logging
import re
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any

import aiohttp

SMS_LOGGER = "bastion.sms.console"
PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_ERROR = re.compile(
    r'class="field__error"[^>]*>(?:<span class="visually-hidden">Error: </span>)?([^<]+)<'
)
_SUMMARY = re.compile(r'<div class="error-summary".*?</div>', re.S)


class SmsInbox(logging.Handler):
    """Collects the codes the console SMS provider logs."""

    _LINE = re.compile(r"verification code for (\+\d+): (\d{6})")

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        match = self._LINE.search(record.getMessage())
        if match:
            self.messages.append((match[1], match[2]))

    def code_for(self, phone: str) -> str:
        codes = [code for to, code in self.messages if to == phone]
        assert codes, f"no code was sent to {phone}"
        return codes[-1]

    def count(self, phone: str | None = None) -> int:
        return sum(1 for to, _ in self.messages if phone is None or to == phone)


@dataclass
class Page:
    status: int
    url: str
    text: str
    headers: Any
    set_cookies: list[str] = field(default_factory=list)

    @property
    def csrf(self) -> str | None:
        match = _CSRF.search(self.text)
        return match[1] if match else None

    @property
    def errors(self) -> list[str]:
        """Field messages and the error summary's items, as shown."""
        found = [html.unescape(m).strip() for m in _ERROR.findall(self.text)]
        summary = _SUMMARY.search(self.text)
        if summary:
            found += [
                html.unescape(re.sub(r"<[^>]+>", "", item)).strip()
                for item in re.findall(r"<li>(.*?)</li>", summary[0], re.S)
            ]
        return found

    def has(self, text: str) -> bool:
        return text in html.unescape(self.text)


class Browserless:
    def __init__(self, base_url: str, http: aiohttp.ClientSession) -> None:
        self.base = base_url
        self.http = http
        self.cookies: dict[str, str] = {}
        self.csrf: str | None = None
        self.history: list[Page] = []

    @property
    def origin(self) -> str:
        return self.base

    def _store(self, response: aiohttp.ClientResponse) -> list[str]:
        raw = response.headers.getall("Set-Cookie", [])
        for line in raw:
            jar: SimpleCookie = SimpleCookie()
            jar.load(line)
            for name, morsel in jar.items():
                if morsel["max-age"] == "0" or not morsel.value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return raw

    async def request(
        self,
        method: str,
        path: str,
        *,
        data: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        follow: bool = True,
    ) -> Page:
        url = path if path.startswith("http") else self.base + path
        set_cookies: list[str] = []
        for _ in range(6):
            cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            sent = {**({"Cookie": cookie} if cookie else {}), **(headers or {})}
            async with self.http.request(
                method, url, data=data, headers=sent, allow_redirects=False, ssl=False
            ) as response:
                set_cookies += self._store(response)
                text = await response.text()
                location = response.headers.get("Location")
                if follow and response.status in (301, 302, 303, 307, 308) and location:
                    url = location if location.startswith("http") else self.base + location
                    method, data, headers = "GET", None, None
                    continue
                page = Page(response.status, url, text, response.headers, set_cookies)
                break
        else:
            raise AssertionError("too many redirects")
        if page.csrf:
            self.csrf = page.csrf
        self.history.append(page)
        return page

    async def get(self, path: str, **kwargs: Any) -> Page:
        return await self.request("GET", path, **kwargs)

    async def post(
        self,
        path: str,
        data: dict[str, str] | None = None,
        *,
        csrf: str | bool | None = True,
        origin: str | bool | None = True,
        headers: dict[str, str] | None = None,
        follow: bool = True,
    ) -> Page:
        """Post a form as a browser would: the page's CSRF token and this site's Origin,
        unless a test says otherwise (False: leave it out; a string: send that)."""
        form = dict(data or {})
        if csrf is True:
            assert self.csrf, "no page with a form was loaded yet"
            form["csrf_token"] = self.csrf
        elif isinstance(csrf, str):
            form["csrf_token"] = csrf
        sent = dict(headers or {})
        if origin is True:
            sent["Origin"] = self.origin
        elif isinstance(origin, str):
            sent["Origin"] = origin
        return await self.request("POST", path, data=form, headers=sent, follow=follow)


async def sign_up(
    dash: Browserless,
    inbox: SmsInbox,
    *,
    email: str,
    phone: str = "+14155550123",
    password: str = PASSWORD,
) -> Page:
    """Sign up and verify the phone with the code from the console provider."""
    await dash.get("/dashboard/signup")
    page = await dash.post(
        "/dashboard/signup",
        {"email": email, "password": password, "password_confirm": password, "phone": phone},
    )
    assert page.status == 200, page.errors
    assert page.url.endswith("/dashboard/verify"), page.errors
    page = await dash.post("/dashboard/verify", {"code": inbox.code_for(phone)})
    assert page.status == 200, page.errors
    assert page.has("Your phone number is verified"), page.errors
    return page


async def sign_in(dash: Browserless, email: str, password: str = PASSWORD) -> Page:
    await dash.get("/dashboard/signin")
    return await dash.post("/dashboard/signin", {"email": email, "password": password})


async def logged(stack: Any, count: int, timeout_s: float = 10.0) -> None:
    """Wait until ``count`` requests are in the request log: the settlement writer's flush
    returns once its queue is empty, which can be a moment before the last batch commits."""
    import asyncio

    from sqlalchemy import func, select

    from bastion.storage.sql.tables import request_log

    await stack.settled()
    for _ in range(int(timeout_s / 0.02)):
        async with stack.runtime.db.engine.connect() as conn:
            found = (await conn.execute(select(func.count()).select_from(request_log))).scalar_one()
        if found >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{count} requests were not logged in {timeout_s} s")

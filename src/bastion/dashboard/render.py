"""Templates (Jinja2, autoescaped, strict about undefined names) and the filters pages use."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import jinja2
import phonenumbers
from aiohttp import web

from bastion.core.money import MICROS_PER_USD
from bastion.dashboard.keys import CSRF, current_session

PACKAGE = Path(__file__).parent
STATIC = PACKAGE / "static"
PREFIX = "/dashboard"


def money(micros: int | None) -> str:
    """Micro-USD for people: ``$12.50``, ``$0.000125``, ``-$3.00`` (exact, at least 2 decimals)."""
    if micros is None:
        return "—"
    sign = "-" if micros < 0 else ""
    text = f"{Decimal(abs(micros)) / MICROS_PER_USD:.6f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"{sign}${int(whole):,}.{frac.ljust(2, '0')}"


def when(ms: int | None) -> str:
    if not ms:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ms / 1000))


def iso(ms: int | None) -> str:
    if not ms:
        return ""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


def day_label(day: int) -> str:
    """20261126 → ``Nov 26``."""
    return time.strftime("%b %d", time.strptime(str(day), "%Y%m%d"))


def phone_hint(e164: str) -> str:
    """Enough of a number for its owner to recognise it: ``+1 ••• ••• 0100``."""
    try:
        country = phonenumbers.parse(e164, None).country_code
    except phonenumbers.NumberParseException:
        return "your phone"
    return f"+{country} ••• ••• {e164[-4:]}"


def units(usage: Mapping[str, Any] | None) -> str:
    """What a request consumed, in its own units."""
    if not usage:
        return "—"
    parts = []
    if usage.get("input_tokens") or usage.get("output_tokens"):
        parts.append(
            f"{usage.get('input_tokens', 0):,} in / {usage.get('output_tokens', 0):,} out tokens"
        )
    if usage.get("images"):
        parts.append(f"{usage['images']} image{'s' if usage['images'] != 1 else ''}")
    if usage.get("audio_ms"):
        parts.append(f"{usage['audio_ms'] / 1000:.1f} s audio")
    if usage.get("characters"):
        parts.append(f"{usage['characters']:,} characters")
    return ", ".join(parts) or "—"


NOTICES = {
    "signed_out": "You are signed out.",
    "password_reset": "Your password was changed, and every session ended. Sign in again.",
    "password_changed": "Your password was changed. Your other sessions were signed out.",
    "verified": "Your phone number is verified: you can create API keys now.",
    "code_sent": "A new code is on its way. Codes from earlier messages no longer work.",
    "code_not_sent": "Your account is ready, but the code could not be sent yet: send it again.",
    "key_revoked": "The key is revoked: requests with it are refused from now on.",
    "cap_saved": "The spend cap is saved.",
    "alerts_saved": "Your low-balance alert is saved.",
    "credit_done": "The credit change is in the ledger.",
    "tier_done": "The tier is changed.",
    "status_done": "The account status is changed.",
}
"""Messages a redirect may ask the next page to show (``?notice=…``); only these, so a link
cannot make the dashboard say anything else."""


def _static_urls() -> dict[str, str]:
    """Each asset's URL with a digest of its content, so browsers may cache it for a year."""
    out = {}
    for path in sorted(STATIC.iterdir()):
        if path.is_file():
            version = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
            out[path.name] = f"{PREFIX}/static/{path.name}?v={version}"
    return out


ENVIRONMENT = jinja2.Environment(
    loader=jinja2.FileSystemLoader(PACKAGE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENVIRONMENT.filters.update(
    money=money, when=when, iso=iso, day_label=day_label, phone_hint=phone_hint, units=units
)
ENVIRONMENT.globals["static"] = _static_urls()
ENVIRONMENT.globals["prefix"] = PREFIX


def render_text(template: str, request: web.Request, context: Mapping[str, Any]) -> str:
    session = current_session(request)
    account = session.account if session is not None else None
    base = {
        "account": account,
        "is_operator": account is not None and account.role == "operator",
        "csrf": request.get(CSRF, ""),
        "path": request.path,
        "errors": {},
        "values": {},
        "notice": NOTICES.get(request.query.get("notice", "")),
        "htmx": request.headers.get("HX-Request") == "true",
    }
    return ENVIRONMENT.get_template(template).render({**base, **context})


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    return web.Response(
        text=render_text(template, request, context),
        status=status,
        content_type="text/html",
        charset="utf-8",
    )


def redirect(location: str, status: int = 303) -> web.Response:
    """A redirect as a response (raising aiohttp's would meet the API's error middleware)."""
    return web.Response(status=status, headers={"Location": location})

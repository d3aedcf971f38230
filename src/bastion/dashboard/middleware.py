"""What every dashboard request goes through: the session, the CSRF check on changes,
HTML error pages, and the security headers.

It runs inside the public app's ``lifecycle`` middleware (request id, access log) and turns
every failure into a page, so no API error envelope ever reaches a browser from here.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web

from bastion.dashboard import cookies, csrf
from bastion.dashboard.forms import FormTooLargeError, read_form
from bastion.dashboard.keys import (
    CLIENT_IP,
    CSRF,
    DASH_RUNTIME,
    NEW_PRESESSION,
    SERVICES,
    SESSION,
    SESSION_TOKEN,
    current_session,
)
from bastion.dashboard.render import render
from bastion.errors import BastionError, RateLimitedError, StoreUnavailableError
from bastion.http.transport import forwarded_https, is_trusted
from bastion.settings.model import Network

log = logging.getLogger("bastion.dashboard")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# No inline script or style anywhere: htmx is told not to inject its indicator style.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}


def client_ip(request: web.Request, trusted: tuple[Network, ...]) -> str:
    """The caller's address: the peer, or behind trusted proxies the last untrusted hop."""
    peer = request.remote or "unknown"
    if not trusted or not is_trusted(peer, trusted):
        return peer
    hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer
        if not is_trusted(hop, trusted):
            return hop
    return peer


def error_page(request: web.Request, status: int, title: str, message: str) -> web.Response:
    return render(request, "error.html", status=status, title=title, message=message)


@web.middleware
async def dashboard_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await _handle(request, handler)
    except asyncio.CancelledError:
        raise
    except web.HTTPException as exc:
        response = _http_error(request, exc)
    except RateLimitedError as exc:
        response = error_page(request, 429, "Too many attempts", exc.message)
        response.headers["Retry-After"] = str(exc.retry_after_s)
    except StoreUnavailableError:
        response = error_page(
            request,
            503,
            "Temporarily unavailable",
            "The dashboard cannot reach its database. Try again in a moment.",
        )
    except BastionError as exc:
        response = error_page(request, exc.status, "Something went wrong", exc.message)
    except Exception:
        log.exception("dashboard error", extra={"path": request.path})
        response = error_page(
            request, 500, "Something went wrong", "An unexpected error happened; it was logged."
        )
    _secure(request, response)
    return response


async def _handle(request: web.Request, handler: Handler) -> web.StreamResponse:
    runtime = request.app[DASH_RUNTIME]
    services = request.app[SERVICES]
    settings = runtime.settings
    trusted = settings.listener.trusted_proxies
    request[CLIENT_IP] = client_ip(request, trusted)
    if request.path.startswith("/dashboard/static/"):
        return await handler(request)
    token = request.cookies.get(cookies.SESSION_COOKIE)
    session = await services.sessions.resolve(token) if token else None
    request[SESSION] = session
    request[SESSION_TOKEN] = token if session is not None else None
    csrf_key = services.subkey("csrf")
    if session is not None:
        binding = csrf.session_binding(session.digest)
    else:
        pre = request.cookies.get(cookies.PRESESSION_COOKIE, "")
        if not pre or len(pre) > 64:
            pre = secrets.token_urlsafe(24)
            request[NEW_PRESESSION] = pre
        binding = csrf.presession_binding(pre)
    expected = csrf.token(csrf_key, binding)
    request[CSRF] = expected
    if request.method not in csrf.SAFE_METHODS:
        https = request.scheme == "https" or forwarded_https(request, trusted)
        origin = csrf.own_origin(request, settings.dashboard.public_origin, https)
        problem = csrf.origin_problem(request, origin)
        try:
            form = await read_form(request)
        except FormTooLargeError:
            return error_page(request, 413, "Form too large", "That form is larger than allowed.")
        given = request.headers.get(csrf.HEADER) or form.get(csrf.FIELD)
        if problem is None and (NEW_PRESESSION in request or not csrf.matches(expected, given)):
            problem = "CSRF token"
        if problem is not None:
            log.info("dashboard change refused", extra={"path": request.path, "reason": problem})
            return error_page(
                request,
                403,
                "This form has expired",
                "The form was open too long, or it was sent from another site. "
                "Go back, reload the page and try again.",
            )
    response = await handler(request)
    if NEW_PRESESSION in request and session is None and current_session(request) is None:
        cookies.set_presession(response, request[NEW_PRESESSION])
    if token and session is None and cookies.SESSION_COOKIE not in response.cookies:
        cookies.clear(response, cookies.SESSION_COOKIE)  # ended or unknown: forget it
    return response


def _http_error(request: web.Request, exc: web.HTTPException) -> web.Response:
    if exc.status == 404:
        return error_page(request, 404, "Page not found", "There is no page at this address.")
    if exc.status == 405:
        return error_page(request, 405, "Not allowed", "This page does not accept that method.")
    return error_page(request, exc.status, exc.reason or "Error", exc.text or "")


def _secure(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    for name, value in SECURITY_HEADERS.items():
        headers.setdefault(name, value)
    if request.path.startswith("/dashboard/static/") and response.status == 200:
        headers["Cache-Control"] = "public, max-age=31536000, immutable"
    else:
        headers["Cache-Control"] = "no-store"
    if request.scheme == "https":
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")

"""CSRF defence for every state-changing dashboard request: a synchronizer token and an
Origin check, both required (OWASP CSRF Prevention Cheat Sheet).

The token is an HMAC, under the dashboard's CSRF key, of what the browser is bound to: the
session (by its digest) once signed in, the pre-session cookie before.  It is not stored:
any replica recomputes it, it changes when the session rotates, and one session's token is
worthless in another.  Forms carry it in a hidden field, htmx requests in ``X-CSRF-Token``
(``hx-headers`` on ``<body>``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import urlsplit

from aiohttp import web

FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def token(key: bytes, binding: bytes) -> str:
    mac = hmac.new(key, binding, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def session_binding(session_digest: bytes) -> bytes:
    return b"session:" + session_digest


def presession_binding(value: str) -> bytes:
    return b"pre:" + hashlib.sha256(value.encode()).digest()


def matches(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


def own_origin(request: web.Request, public_origin: str | None, https: bool) -> str:
    if public_origin:
        return public_origin
    return f"{'https' if https else request.scheme}://{request.host}"


def origin_problem(request: web.Request, expected: str) -> str | None:
    """Why the request does not come from the dashboard's own pages, or None if it does."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return f"Sec-Fetch-Site is {fetch_site}"
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        referer = request.headers.get("Referer")
        if not referer:
            return "no Origin"
        parts = urlsplit(referer)
        origin = f"{parts.scheme}://{parts.netloc}"
    if origin.rstrip("/").lower() != expected.lower():
        return "another Origin"
    return None

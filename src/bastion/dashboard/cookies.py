"""The dashboard's cookies and their flags.

- ``__Host-bastion_session``: the session id.  ``__Host-`` makes browsers insist on
  ``Secure``, ``Path=/`` and no ``Domain``, so no other host (a sibling subdomain, a plain-HTTP
  man in the middle) can set or overwrite it.  ``HttpOnly``: scripts never see it.
  ``SameSite=Lax``: sent on top-level navigations from other sites (a link in the low-balance
  email opens the dashboard signed in), never on their sub-requests or cross-site POSTs;
  ``Strict`` would make every such link land signed out.  Lax is enough because no GET
  changes anything and every change also needs the CSRF token and a same-origin ``Origin``.
  No ``Max-Age``: it ends with the browser, and the server ends it sooner (idle/absolute).
- ``__Host-bastion_pre``: before sign-in, a random value the CSRF token of the sign-in,
  sign-up and reset forms is bound to (so a login-CSRF cannot sign a victim into the
  attacker's account).

Browsers accept ``Secure`` cookies from ``https://`` and from loopback ``http://``
(``127.0.0.1``, ``localhost``), so local development works without TLS.
"""

from __future__ import annotations

from aiohttp import web

SESSION_COOKIE = "__Host-bastion_session"
PRESESSION_COOKIE = "__Host-bastion_pre"
PRESESSION_MAX_AGE_S = 24 * 3600


def _set(response: web.StreamResponse, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(
        name,
        value,
        path="/",
        secure=True,
        httponly=True,
        samesite="Lax",
        max_age=max_age,
    )


def set_session(response: web.StreamResponse, token: str) -> None:
    _set(response, SESSION_COOKIE, token, None)
    clear(response, PRESESSION_COOKIE)


def set_presession(response: web.StreamResponse, value: str) -> None:
    _set(response, PRESESSION_COOKIE, value, PRESESSION_MAX_AGE_S)


def clear(response: web.StreamResponse, name: str) -> None:
    # a __Host- cookie is only replaced by a Set-Cookie with the same flags
    response.del_cookie(name, path="/", secure=True, httponly=True, samesite="Lax")

"""Who may see a page: signed in, phone verified, operator.  And where to go back to."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from aiohttp import web

from bastion.dashboard.keys import current_session
from bastion.dashboard.render import PREFIX, redirect, render
from bastion.storage.sql.sessions import SessionRecord

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def session_of(request: web.Request) -> SessionRecord:
    session = current_session(request)
    assert session is not None, "guarded by signed_in"
    return session


def safe_next(target: str | None) -> str | None:
    """A same-site dashboard path to return to after sign-in (never another host)."""
    if (
        not target
        or not target.startswith(PREFIX + "/")
        or target.startswith("//")
        or "\\" in target
        or any(ord(ch) < 32 for ch in target)
    ):
        return None
    return target


def signed_in(*, verified: bool = True, operator: bool = False) -> Callable[[Handler], Handler]:
    """Signed in (else to the sign-in page), phone verified (else to the code page), and an
    operator when asked (else 403)."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            session = current_session(request)
            if session is None:
                back = request.path_qs if request.method == "GET" else PREFIX + "/"
                response = redirect(f"{PREFIX}/signin?next={quote(back, safe='/')}")
                if request.headers.get("HX-Request") == "true":
                    response.headers["HX-Redirect"] = f"{PREFIX}/signin"
                return response
            if verified and not session.account.phone_verified:
                return redirect(f"{PREFIX}/verify")
            if operator and session.account.role != "operator":
                return render(
                    request,
                    "error.html",
                    status=403,
                    title="Operators only",
                    message="This page is for the operators of this server.",
                )
            return await handler(request)

        return guarded

    return decorate


def actor(session: SessionRecord) -> str:
    """How the audit log names who did something from the dashboard."""
    role = "operator" if session.account.role == "operator" else "account"
    return f"{role}:{session.account.id}"

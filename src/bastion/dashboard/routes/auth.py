"""Sign-up, phone verification, sign-in, sign-out, password change and reset."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bastion.admin.forms import FORM, FormError
from bastion.admin.verification import SIGNUP
from bastion.dashboard import cookies
from bastion.dashboard.forms import read_form
from bastion.dashboard.guards import safe_next, session_of, signed_in
from bastion.dashboard.keys import CLIENT_IP, SERVICES, SESSION_TOKEN, current_session
from bastion.dashboard.render import PREFIX, redirect, render
from bastion.errors import BastionError, RateLimitedError

HOME = PREFIX + "/"


def _ua(request: web.Request) -> str | None:
    return request.headers.get("User-Agent")


def _signed_in_as(target: str, token: str) -> web.Response:
    response = redirect(target)
    cookies.set_session(response, token)
    return response


# -- sign-in and sign-out ------------------------------------------------------------------


async def signin_page(request: web.Request) -> web.StreamResponse:
    if current_session(request) is not None:
        return redirect(HOME)
    return render(request, "signin.html", next=safe_next(request.query.get("next")) or "")


async def signin(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    form = await read_form(request)
    values = {"email": form.get("email", "")}
    target = safe_next(form.get("next"))
    try:
        token, account = await services.sessions.sign_in(
            form.get("email", ""),
            form.get("password", ""),
            ip=request[CLIENT_IP],
            user_agent=_ua(request),
            replaces=request[SESSION_TOKEN],
        )
    except FormError as exc:
        return render(
            request, "signin.html", 400, errors=exc.errors, values=values, next=target or ""
        )
    except RateLimitedError as exc:
        return render(
            request,
            "signin.html",
            429,
            errors={FORM: exc.message},
            values=values,
            next=target or "",
        )
    if not account.phone_verified:
        target = PREFIX + "/verify"
    return _signed_in_as(target or HOME, token)


async def signout(request: web.Request) -> web.StreamResponse:
    token = request[SESSION_TOKEN]
    if token:
        await request.app[SERVICES].sessions.close(token)
    response = redirect(PREFIX + "/signin?notice=signed_out")
    cookies.clear(response, cookies.SESSION_COOKIE)
    return response


# -- sign-up and the phone code --------------------------------------------------------------


async def signup_page(request: web.Request) -> web.StreamResponse:
    if current_session(request) is not None:
        return redirect(HOME)
    return render(request, "signup.html", **_signup_context(request))


def _signup_context(request: web.Request) -> dict[str, Any]:
    settings = request.app[SERVICES].settings
    return {
        "open": settings.dashboard.signup and bool(settings.sms.allowed_countries),
        "countries": sorted(settings.sms.allowed_countries),
        "min_length": settings.dashboard.min_password_length,
    }


async def signup(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    form = await read_form(request)
    values = {"email": form.get("email", ""), "phone": form.get("phone", "")}
    context = _signup_context(request)
    try:
        done = await services.signup.register(
            email=form.get("email", ""),
            password=form.get("password", ""),
            password_confirm=form.get("password_confirm", ""),
            phone=form.get("phone", ""),
            ip=request[CLIENT_IP],
        )
    except FormError as exc:
        return render(request, "signup.html", 400, errors=exc.errors, values=values, **context)
    except RateLimitedError as exc:
        return render(
            request, "signup.html", 429, errors={FORM: exc.message}, values=values, **context
        )
    token = await services.sessions.open(
        done.account.id, ip=request[CLIENT_IP], user_agent=_ua(request)
    )
    notice = "?notice=code_not_sent" if done.send_error else ""
    return _signed_in_as(f"{PREFIX}/verify{notice}", token)


async def _verify_context(request: web.Request) -> dict[str, Any]:
    services = request.app[SERVICES]
    account = session_of(request).account
    challenge = await services.challenges.latest(account.id, SIGNUP)
    return {"phone": account.phone, "challenge": challenge}


@signed_in(verified=False)
async def verify_page(request: web.Request) -> web.StreamResponse:
    if session_of(request).account.phone_verified:
        return redirect(HOME)
    return render(request, "verify.html", **await _verify_context(request))


@signed_in(verified=False)
async def verify(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    account = session_of(request).account
    if account.phone_verified:
        return redirect(HOME)
    form = await read_form(request)
    try:
        result, updated = await services.signup.confirm(
            account, form.get("code", ""), request[CLIENT_IP]
        )
    except FormError as exc:
        errors = exc.errors
    except RateLimitedError as exc:
        errors = {"code": exc.message}
    else:
        if updated is not None:
            return redirect(HOME + "?notice=verified")
        errors = {"code": result.message()}
    return render(request, "verify.html", 400, errors=errors, **await _verify_context(request))


@signed_in(verified=False)
async def resend(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    account = session_of(request).account
    if account.phone_verified:
        return redirect(HOME)
    status = 400
    try:
        await services.signup.resend(account, request[CLIENT_IP])
    except FormError as exc:
        errors = exc.errors
    except BastionError as exc:
        errors = {FORM: exc.message}
        status = exc.status
    else:
        return redirect(PREFIX + "/verify?notice=code_sent")
    return render(request, "verify.html", status, errors=errors, **await _verify_context(request))


# -- password reset through the phone --------------------------------------------------------


async def reset_page(request: web.Request) -> web.StreamResponse:
    return render(request, "reset.html")


async def reset(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    form = await read_form(request)
    values = {"email": form.get("email", "")}
    try:
        challenge_id = await services.reset.request(form.get("email", ""), request[CLIENT_IP])
    except FormError as exc:
        return render(request, "reset.html", 400, errors=exc.errors, values=values)
    except RateLimitedError as exc:
        return render(request, "reset.html", 429, errors={FORM: exc.message}, values=values)
    return redirect(f"{PREFIX}/reset/confirm?c={challenge_id}")


def _challenge_id(text: str) -> str:
    return text if text.startswith("chal_") and len(text) <= 32 and text.isascii() else ""


async def reset_confirm_page(request: web.Request) -> web.StreamResponse:
    challenge_id = _challenge_id(request.query.get("c", ""))
    if not challenge_id:
        return redirect(PREFIX + "/reset")
    return render(
        request, "reset_confirm.html", challenge_id=challenge_id, min_length=_min(request)
    )


def _min(request: web.Request) -> int:
    return request.app[SERVICES].settings.dashboard.min_password_length


async def reset_confirm(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    form = await read_form(request)
    challenge_id = _challenge_id(form.get("challenge", ""))
    if not challenge_id:
        return redirect(PREFIX + "/reset")
    try:
        await services.reset.confirm(
            challenge_id,
            form.get("code", ""),
            form.get("password", ""),
            form.get("password_confirm", ""),
            request[CLIENT_IP],
        )
    except FormError as exc:
        errors = exc.errors
    except RateLimitedError as exc:
        errors = {FORM: exc.message}
    else:
        response = redirect(PREFIX + "/signin?notice=password_reset")
        cookies.clear(response, cookies.SESSION_COOKIE)
        return response
    return render(
        request,
        "reset_confirm.html",
        400,
        errors=errors,
        challenge_id=challenge_id,
        min_length=_min(request),
    )


# -- the account page: password change -------------------------------------------------------


@signed_in(verified=False)
async def account_page(request: web.Request) -> web.StreamResponse:
    return render(request, "account.html", min_length=_min(request))


@signed_in(verified=False)
async def change_password(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    session = session_of(request)
    form = await read_form(request)
    try:
        token = await services.sessions.change_password(
            session.account,
            current=form.get("current_password", ""),
            new=form.get("new_password", ""),
            confirm=form.get("new_password_confirm", ""),
            ip=request[CLIENT_IP],
            user_agent=_ua(request),
        )
    except FormError as exc:
        errors = exc.errors
    except RateLimitedError as exc:
        errors = {FORM: exc.message}
    else:
        return _signed_in_as(PREFIX + "/account?notice=password_changed", token)
    return render(request, "account.html", 400, errors=errors, min_length=_min(request))


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/signin", signin_page)
    r.add_post("/signin", signin)
    r.add_post("/signout", signout)
    r.add_get("/signup", signup_page)
    r.add_post("/signup", signup)
    r.add_get("/verify", verify_page)
    r.add_post("/verify", verify)
    r.add_post("/verify/resend", resend)
    r.add_get("/reset", reset_page)
    r.add_post("/reset", reset)
    r.add_get("/reset/confirm", reset_confirm_page)
    r.add_post("/reset/confirm", reset_confirm)
    r.add_get("/account", account_page)
    r.add_post("/account/password", change_password)

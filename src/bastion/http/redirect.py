"""The plain-HTTP listener: a 308 to HTTPS for everything, and a key sent in clear is exposed.

Most HTTP clients (the OpenAI SDKs included) keep the ``Authorization`` header when they
follow a same-host redirect, so a key that arrived here has crossed the network in clear
text.  By default it is revoked before the redirect is answered, and the account's audit
log says why; the client that follows the redirect then gets 401.  The header is never
logged, echoed or forwarded.
"""

from __future__ import annotations

import logging

import orjson
from aiohttp import web

from bastion.admin.keys import find_by_secret
from bastion.core import keys
from bastion.errors import StoreUnavailableError
from bastion.http.keys import RUNTIME
from bastion.runtime import Runtime

log = logging.getLogger("bastion.redirect")


HTTPS_PORT: web.AppKey[int] = web.AppKey("https_port", int)
"""The port of the HTTPS listener this app redirects to (the redirect listener knows it)."""


def https_location(request: web.Request, runtime: Runtime) -> str:
    """The same path on HTTPS: on ``https_redirect_port`` if set, else on the port the
    public TLS listener is bound to (redirect listener) or 443 (a plain listener behind a
    TLS-terminating proxy, whose clients reach the proxy on the standard port)."""
    listener = runtime.settings.listener
    host = request.url.host or listener.host
    port = listener.https_redirect_port or request.app.get(HTTPS_PORT) or 443
    authority = host if port == 443 else f"{host}:{port}"
    if ":" in host and not host.startswith("["):
        authority = f"[{host}]" if port == 443 else f"[{host}]:{port}"
    return f"https://{authority}{request.rel_url.raw_path_qs}"


async def expose_key(runtime: Runtime, token: str, peer: str | None) -> str | None:
    """Handle a key seen in clear: revoke (or only record) it; returns what was done."""
    record = await find_by_secret(runtime.db, token)
    if record is None or not record.is_active:
        return None
    policy = runtime.settings.listener.exposed_key_policy
    await runtime.db.audit.record(
        actor="plain-http-listener",
        action="key.exposed",
        account_id=record.account_id,
        key_id=record.id,
        details={"policy": policy, "peer": peer},
    )
    if policy == "revoke":
        await runtime.keys.revoke(
            record.id, actor="plain-http-listener", reason="sent over plain HTTP"
        )
        log.warning("key revoked: sent over plain HTTP", extra={"key_id": record.id})
        return "revoked"
    log.warning("key sent over plain HTTP (policy: warn)", extra={"key_id": record.id})
    return "warned"


async def redirect_plain_http(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    location = https_location(request, runtime)
    token = keys.bearer_token(request.headers.get("Authorization"))
    done = None
    if token is not None and keys.is_well_formed(token):
        try:
            done = await expose_key(runtime, token, request.remote)
        except StoreUnavailableError:
            log.error("could not revoke a key seen over plain HTTP: store unavailable")
    message = "Bastion serves its API over HTTPS only; use " + location
    if done == "revoked":
        message += ". The API key sent with this request crossed the network unencrypted and "
        message += "has been revoked: create a new key and call over HTTPS."
    elif done == "warned":
        message += ". The API key sent with this request crossed the network unencrypted: "
        message += "rotate it."
    body = {
        "error": {"message": message, "type": "invalid_request_error", "code": "https_required"}
    }
    return web.Response(
        status=308,
        body=orjson.dumps(body),
        content_type="application/json",
        headers={"Location": location, "Cache-Control": "no-store"},
    )


async def _any(request: web.Request) -> web.Response:
    return await redirect_plain_http(request)


def create_redirect_app(runtime: Runtime, https_port: int | None = None) -> web.Application:
    app = web.Application(client_max_size=64 * 1024)
    app[RUNTIME] = runtime
    app[HTTPS_PORT] = https_port or runtime.settings.listener.port
    app.router.add_route("*", "/{tail:.*}", _any)
    return app

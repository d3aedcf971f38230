"""HTTPS-only rules for the public listener.

A TLS listener is HTTPS by construction.  A plain listener is allowed on loopback (local
development) and behind a TLS-terminating proxy: then a request counts as HTTPS only if it
comes from a trusted proxy address with ``X-Forwarded-Proto: https``; anything else is
treated as plain HTTP, exactly like the redirect listener (308, key revoked if valid).

Configured ``trusted_proxies`` always mean "behind a proxy", on loopback too: a proxy on the
same host forwards its plain-HTTP requests to a loopback listener as well, and those must not
be served as if they had been encrypted.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from bastion.settings import ListenerSettings
from bastion.settings.model import Network

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_trusted(peer: str | None, proxies: tuple[Network, ...]) -> bool:
    if not peer:
        return False
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(address in network for network in proxies)


def proxied(listener: ListenerSettings) -> bool:
    """Plain HTTP that counts as HTTPS only when a trusted proxy says so."""
    return not listener.tls and (bool(listener.trusted_proxies) or not is_loopback(listener.host))


def https_from(peer: str | None, forwarded_proto: str, proxies: tuple[Network, ...]) -> bool:
    """A request from ``peer`` with this ``X-Forwarded-Proto`` came over HTTPS."""
    if not is_trusted(peer, proxies):
        return False
    return forwarded_proto.split(",")[0].strip().lower() == "https"


def forwarded_https(request: web.Request, proxies: tuple[Network, ...]) -> bool:
    return https_from(request.remote, request.headers.get("X-Forwarded-Proto", ""), proxies)


def https_guard(listener: ListenerSettings) -> Middleware | None:
    """A middleware enforcing HTTPS-via-proxy, or None when the listener needs none."""
    if not proxied(listener):
        return None

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if forwarded_https(request, listener.trusted_proxies):
            return await handler(request)
        from bastion.http.redirect import redirect_plain_http

        return await redirect_plain_http(request)

    return guard

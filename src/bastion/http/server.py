"""Run the listeners: the public one (TLS, or plain on loopback / behind a trusted proxy), the
optional plain-HTTP redirect listener and the optional admin listener (metrics, health); stop
gracefully on SIGTERM/SIGINT.

Graceful stop (drain): the listening sockets close first, so new connections are refused;
idle kept-alive connections are closed; requests in flight, streams included, may finish for
up to ``listener.shutdown_grace_s``, each charge made durable before its last byte as always.
A request still open at the deadline is cancelled: a stream is cut and billed by the
client-gone rule (prompt plus the output produced so far), and that charge is written before
the process exits.  The admin listener stays up until the drain is over (``/readyz`` answers
503 ``draining`` meanwhile), then the runtime closes (the settlement writer flushes)."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import ssl
import sys
from collections.abc import Callable

from aiohttp import web

from bastion.errors import ConfigError
from bastion.http.admin_app import create_admin_app
from bastion.http.app import create_app
from bastion.http.listener import ApiServer
from bastion.http.protocol import (
    MAX_FIELD_SIZE,
    MAX_HEADERS,
    MAX_LINE_SIZE,
    Deadlines,
    GuardedAppRunner,
)
from bastion.http.redirect import create_redirect_app
from bastion.http.transport import is_loopback
from bastion.runtime import Runtime
from bastion.settings import ListenerSettings, Settings

SWITCH_INTERVAL_S = 0.0005
YOUNG_GC_THRESHOLD = 20_000
"""Net new container objects between young-generation collections (CPython's default: 700).
Almost everything a request allocates is freed by reference counting, but the objects of
the requests in flight (thousands at 64 connections) keep crossing 700: the collector ran
~150 times a second at saturation, 200 µs each, about 19 µs a request (5 % of the core),
and its full collections paused the loop up to 12 ms.  Past 20,000 it runs a few times a
minute (docs/performance.md)."""

log = logging.getLogger("bastion.server")


def tls_context(listener: ListenerSettings) -> ssl.SSLContext | None:
    if listener.tls_cert is None or listener.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(listener.tls_cert), str(listener.tls_key))
    context.set_alpn_protocols(["http/1.1"])
    return context


def check_listener(settings: Settings) -> None:
    listener = settings.listener
    if not listener.tls and not is_loopback(listener.host) and not listener.trusted_proxies:
        raise ConfigError(
            f"{settings.file}: listener: plain HTTP on {listener.host} is refused; set "
            "tls_cert and tls_key, listen on a loopback address, or list the TLS-terminating "
            "proxies in trusted_proxies"
        )


def runner_for(app: web.Application, runtime: Runtime) -> web.AppRunner:
    """A runner whose connections have header and body receipt deadlines, header size and
    count limits, an idle keep-alive timeout and the drain grace period."""
    listener = runtime.settings.listener
    return GuardedAppRunner(
        app,
        deadlines=Deadlines(
            header_timeout_s=listener.header_timeout_s,
            body_timeout_s=listener.body_timeout_s,
            metrics=runtime.metrics,
        ),
        handler_cancellation=True,  # a client that leaves cancels its request (and upstream)
        access_log=None,
        keepalive_timeout=listener.keepalive_timeout_s,
        max_line_size=MAX_LINE_SIZE,
        max_field_size=MAX_FIELD_SIZE,
        max_headers=MAX_HEADERS,
        shutdown_timeout=listener.shutdown_grace_s,
    )


class Server:
    """The gateway's listeners around one :class:`Runtime`."""

    def __init__(self, runtime: Runtime, host: str | None = None, port: int | None = None) -> None:
        self.runtime = runtime
        self.host = host or runtime.settings.listener.host
        self.port = runtime.settings.listener.port if port is None else port
        self._runners: list[web.AppRunner] = []
        self._admin: web.AppRunner | None = None
        self._api: ApiServer | None = None
        self._listening: asyncio.Server | None = None
        self.bound: list[tuple[str, int]] = []
        self.admin_bound: tuple[str, int] | None = None

    async def start(self) -> None:
        settings = self.runtime.settings
        # every credential in these is a Secret (masked repr); URLs lose their passwords
        log.debug(
            "settings",
            extra={
                "file": settings.file,
                "listener": repr(settings.listener),
                "storage": repr(settings.storage),
                "admin": repr(settings.admin),
                "upstreams": [repr(u) for u in settings.upstreams.values()],
            },
        )
        await self.runtime.start()
        # aiohttp serves what the API lane hands it (its runner has no socket of its own)
        main = runner_for(create_app(self.runtime), self.runtime)
        await main.setup()
        self._runners.append(main)
        assert main.server is not None
        self._api = ApiServer(self.runtime, main.server)
        self._listening = await asyncio.get_running_loop().create_server(
            self._api,
            self.host,
            self.port,
            ssl=tls_context(settings.listener),
            backlog=1024,
            reuse_address=True,
        )
        self.bound.append(_address(self._listening))
        listener = settings.listener
        if listener.plain_http_port:
            # redirect to where the public listener really is (``--port``, or port 0)
            redirect = runner_for(create_redirect_app(self.runtime, self.bound[0][1]), self.runtime)
            await redirect.setup()
            self._runners.append(redirect)
            await web.TCPSite(
                redirect, listener.plain_http_host or self.host, listener.plain_http_port
            ).start()
            self.bound.append(_bound(redirect))
        admin = settings.admin
        if admin.enabled:
            self._admin = runner_for(create_admin_app(self.runtime), self.runtime)
            await self._admin.setup()
            await web.TCPSite(self._admin, admin.host, admin.port).start()
            self.admin_bound = _bound(self._admin)

    @property
    def url(self) -> str:
        host, port = self.bound[0]
        scheme = "https" if self.runtime.settings.listener.tls else "http"
        shown = f"[{host}]" if ":" in host else host
        return f"{scheme}://{shown}:{port}"

    @property
    def admin_url(self) -> str | None:
        if self.admin_bound is None:
            return None
        host, port = self.admin_bound
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    async def stop(self) -> None:
        """Drain (see the module's docstring), then close everything."""
        self.runtime.draining = True
        in_flight = self.runtime.metrics.active
        if in_flight:
            log.info(
                "draining: %d requests in flight, up to %s s",
                in_flight,
                self.runtime.settings.listener.shutdown_grace_s,
            )
        # every listening socket first: new connections are refused from here on
        if self._listening is not None:
            self._listening.close()
        for runner in reversed(self._runners):
            for site in list(runner.sites):
                await site.stop()
        # the API lane's connections and those handed to aiohttp drain together
        grace_s = self.runtime.settings.listener.shutdown_grace_s
        drains = [runner.cleanup() for runner in reversed(self._runners)]
        if self._api is not None:
            drains.append(self._api.shutdown(grace_s))
        await asyncio.gather(*drains)
        self._runners.clear()
        self._api = None
        if self._listening is not None:
            await self._listening.wait_closed()
            self._listening = None
        if self._admin is not None:
            await self._admin.cleanup()
            self._admin = None
        await self.runtime.close()
        log.info("stopped")


def _address(server: asyncio.Server) -> tuple[str, int]:
    for sock in server.sockets:
        address = sock.getsockname()
        if isinstance(address, tuple):
            return str(address[0]), int(address[1])
    raise RuntimeError("listener has no address")


def _bound(runner: web.AppRunner) -> tuple[str, int]:
    for address in runner.addresses:
        if isinstance(address, tuple):
            return str(address[0]), int(address[1])
    raise RuntimeError("listener has no address")


async def serve_forever(server: Server, announce: Callable[[Server], None]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    loop.add_signal_handler(signal.SIGHUP, server.runtime.retire_reload)
    # What start-up allocated (libraries, settings, the catalog, caches) lives as long as the
    # process: take it out of the cyclic collector's generations, so that a full collection
    # scans what requests allocate, not tens of MB of modules (a latency spike otherwise).
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_GC_THRESHOLD, *gc.get_threshold()[1:])
    # The settlement writer's thread needs the GIL for a moment per batch; by default a
    # thread asking for it waits up to 5 ms for the event loop to let go, and every answer
    # waits on that commit.  0.5 ms bounds the wait (measured: docs/performance.md).
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    announce(server)
    try:
        await stop.wait()
        log.info("shutting down: finishing open requests")
    finally:
        await server.stop()

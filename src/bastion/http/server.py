"""Run the listeners: the public one (TLS, or plain on loopback / behind a trusted proxy) and
the optional plain-HTTP redirect listener; stop gracefully on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from collections.abc import Callable

from aiohttp import web

from bastion.errors import ConfigError
from bastion.http.app import create_app
from bastion.http.redirect import create_redirect_app
from bastion.http.transport import is_loopback
from bastion.runtime import Runtime
from bastion.settings import ListenerSettings, Settings

log = logging.getLogger("bastion.server")

SHUTDOWN_GRACE_S = 30.0


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


def runner_for(app: web.Application) -> web.AppRunner:
    return web.AppRunner(
        app,
        handler_cancellation=True,  # a client that leaves cancels its request (and upstream)
        access_log=None,
        keepalive_timeout=75.0,
        max_line_size=8190,
        max_field_size=8190,
        max_headers=100,
        shutdown_timeout=SHUTDOWN_GRACE_S,
    )


class Server:
    """The gateway's listeners around one :class:`Runtime`."""

    def __init__(self, runtime: Runtime, host: str | None = None, port: int | None = None) -> None:
        self.runtime = runtime
        self.host = host or runtime.settings.listener.host
        self.port = runtime.settings.listener.port if port is None else port
        self._runners: list[web.AppRunner] = []
        self.bound: list[tuple[str, int]] = []

    async def start(self) -> None:
        settings = self.runtime.settings
        await self.runtime.start()
        main = runner_for(create_app(self.runtime))
        await main.setup()
        self._runners.append(main)
        site = web.TCPSite(
            main, self.host, self.port, ssl_context=tls_context(settings.listener), backlog=1024
        )
        await site.start()
        self.bound.append(_bound(main))
        listener = settings.listener
        if listener.plain_http_port:
            # redirect to where the public listener really is (``--port``, or port 0)
            redirect = runner_for(create_redirect_app(self.runtime, self.bound[0][1]))
            await redirect.setup()
            self._runners.append(redirect)
            await web.TCPSite(
                redirect, listener.plain_http_host or self.host, listener.plain_http_port
            ).start()
            self.bound.append(_bound(redirect))

    @property
    def url(self) -> str:
        host, port = self.bound[0]
        scheme = "https" if self.runtime.settings.listener.tls else "http"
        shown = f"[{host}]" if ":" in host else host
        return f"{scheme}://{shown}:{port}"

    async def stop(self) -> None:
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        await self.runtime.close()


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
    announce(server)
    try:
        await stop.wait()
        log.info("shutting down: finishing open requests")
    finally:
        await server.stop()

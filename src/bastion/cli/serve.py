"""``bastion serve``, ``bastion simulate``, ``bastion quickstart``, ``bastion migrate``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import sys
from collections.abc import Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import click

from bastion.cli.context import (
    CliContext,
    emit,
    fail,
    json_option,
    pass_ctx,
    ring_doorbell,
    run,
    run_with_db,
)
from bastion.errors import ConfigError
from bastion.http.server import Server, check_listener, serve_forever
from bastion.http.transport import is_loopback
from bastion.observability.logging import configure
from bastion.runtime import Runtime
from bastion.settings import load_settings
from bastion.storage.memory.lock import ProcessLock
from bastion.storage.redis.doorbell import RELOAD
from bastion.storage.sql.database import Database

DEMO_EMAIL = "demo@bastion.local"
DEMO_PHONE = "+14155550100"
DEMO_CREDIT_MICROS = 10_000_000
DEMO_OPERATOR = "operator@bastion.local"


def _use_uvloop() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _announce_plain(server: Server) -> None:
    listener = server.runtime.settings.listener
    if not listener.tls and listener.trusted_proxies:
        proxies = ", ".join(str(p) for p in listener.trusted_proxies)
        click.echo(
            f"bastion: serving plain HTTP on {server.url} behind TLS-terminating proxies "
            f"({proxies}): only their requests with X-Forwarded-Proto: https are served, "
            "anything else is redirected to HTTPS.",
            err=True,
        )
    elif not listener.tls and is_loopback(server.host):
        click.echo(
            f"bastion: serving plain HTTP on {server.url} (loopback only: local development). "
            "Configure listener.tls_cert and tls_key for anything else.",
            err=True,
        )


@click.command("serve")
@click.option("--host", default=None, help="Listen address (default: listener.host).")
@click.option("--port", type=int, default=None, help="Listen port (default: listener.port).")
@pass_ctx
def serve(ctx: CliContext, host: str | None, port: int | None) -> None:
    """Run the gateway."""
    settings = ctx.settings
    if host is not None:
        settings = replace(settings, listener=replace(settings.listener, host=host))
    try:
        check_listener(settings)
    except ConfigError as exc:
        fail(str(exc))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    configure(settings.log)
    _use_uvloop()
    server = Server(Runtime(settings), host=host, port=port)

    def announce(s: Server) -> None:
        _announce_plain(s)
        click.echo(f"bastion: listening on {s.url}", err=True)
        if len(s.bound) > 1:
            host, plain_port = s.bound[1]
            click.echo(f"bastion: plain-HTTP redirect listener on {host}:{plain_port}", err=True)
        if s.admin_url is not None:
            click.echo(f"bastion: admin listener (metrics, health) on {s.admin_url}", err=True)

    run(serve_forever(server, announce))


@click.command("simulate")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8700, show_default=True)
@click.option("--tokens-per-second", type=float, default=50.0, show_default=True)
@click.option("--first-token-ms", type=float, default=50.0, show_default=True)
@click.option(
    "--fault",
    type=click.Choice(["5xx", "reset", "slow_first_byte", "stall", "wrong_content_type"]),
    default=None,
    help="Inject a failure into every request (or a share of them, see --fault-rate).",
)
@click.option("--fault-rate", type=float, default=1.0, show_default=True)
@click.option("--api-key", default=None, help="Require this bearer token from the gateway.")
@click.option(
    "--riva-port",
    type=int,
    default=8701,
    show_default=True,
    help="Port of the simulated NVIDIA Riva TTS server (gRPC, plaintext).",
)
@click.option(
    "--riva-fault",
    type=click.Choice(["error", "stall"]),
    default=None,
    help="Riva: answer every synthesis with --riva-fault-status, or never answer.",
)
@click.option("--riva-fault-status", default="UNAVAILABLE", show_default=True)
@click.option(
    "--riva-voice",
    type=click.Choice(["auto", "espeak", "tones"]),
    default="auto",
    show_default=True,
    help="Riva audio: espeak-ng speech, synthetic tones, or espeak-ng when installed.",
)
def simulate(
    host: str,
    port: int,
    tokens_per_second: float,
    first_token_ms: float,
    fault: str | None,
    fault_rate: float,
    api_key: str | None,
    riva_port: int,
    riva_fault: Literal["error", "stall"] | None,
    riva_fault_status: str,
    riva_voice: Literal["auto", "espeak", "tones"],
) -> None:
    """Run the upstream simulators: an OpenAI-compatible model server and an NVIDIA Riva TTS
    server (both labelled as simulated)."""
    from bastion.simulator import SimulatorOptions
    from bastion.simulator import serve as serve_simulator
    from bastion.simulator.riva import RivaOptions, serve_riva
    from bastion.simulator.riva.options import status_code

    riva_options = RivaOptions(fault=riva_fault, fault_status=riva_fault_status, voice=riva_voice)
    try:
        status_code(riva_fault_status)
    except ValueError as exc:
        fail(f"--riva-fault-status: {exc}")
    riva = serve_riva(host, riva_port, riva_options)
    source = click.get_current_context().get_parameter_source("riva_port")
    if source is click.core.ParameterSource.DEFAULT:
        # Riva on its default port is a convenience: if that port is taken (another
        # simulator, a quickstart), the OpenAI-compatible simulator still serves.
        riva = _or_warn(riva, f"Riva TTS not served on port {riva_port}")

    options = SimulatorOptions(
        tokens_per_second=tokens_per_second,
        first_token_ms=first_token_ms,
        fault=fault,
        fault_rate=fault_rate,
        api_key=api_key,
    )
    _use_uvloop()
    click.echo(f"bastion simulator: http://{host}:{port}/v1 (simulated models)", err=True)
    click.echo(f"bastion simulator: grpc://{host}:{riva_port} (simulated Riva TTS)", err=True)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(
                _until_signal(
                    _together(
                        serve_simulator(host, port, options),
                        riva,
                    )
                )
            )
    except OSError as exc:  # a port already taken, most often
        fail(str(exc))


async def _or_warn(work: Coroutine[Any, Any, None], what: str) -> None:
    """Run a server that may fail to start; if it does, say so and keep the others running."""
    try:
        await work
    except OSError as exc:
        click.echo(f"bastion simulator: {what}: {exc}", err=True)
        await asyncio.Event().wait()


async def _together(*works: Coroutine[Any, Any, None]) -> None:
    """Run servers side by side; if one stops (e.g. its port is taken), stop them all."""
    tasks = [asyncio.ensure_future(work) for work in works]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _until_signal(work: Coroutine[Any, Any, None]) -> None:
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


@click.command("migrate")
@json_option
@pass_ctx
def migrate(ctx: CliContext) -> None:
    """Bring the database schema to the current version."""

    async def work(db: Database) -> tuple[str | None, str]:
        return await db.migrate()

    before, after = run_with_db(ctx, work)
    emit(
        ctx,
        {"from": before, "to": after},
        f"schema at {after}" + ("" if before == after else f" (was {before or 'empty'})"),
    )


def _free_port(preferred: int) -> int:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            probe.bind(("127.0.0.1", 0))
            return int(probe.getsockname()[1])


@click.command("quickstart")
@click.option("--port", type=int, default=8080, show_default=True)
@click.option("--simulator-port", type=int, default=8700, show_default=True)
@click.option("--riva-port", type=int, default=8701, show_default=True)
@pass_ctx
def quickstart(ctx: CliContext, port: int, simulator_port: int, riva_port: int) -> None:
    """Run the simulators and the gateway together, with a demo account and a fresh key."""
    from bastion.simulator import SimulatorOptions
    from bastion.simulator import serve as serve_simulator
    from bastion.simulator.riva import RivaOptions, serve_riva

    sim_port = _free_port(simulator_port)
    riva_port = _free_port(riva_port)
    environ = dict(os.environ)
    environ["BASTION_SIMULATOR_URL"] = f"http://127.0.0.1:{sim_port}"
    environ["BASTION_RIVA_URL"] = f"grpc://127.0.0.1:{riva_port}"
    environ.setdefault("BASTION_DATA_DIR", ctx.data_dir or ".bastion")
    try:
        settings = load_settings(ctx.config, environ, data_dir=ctx.data_dir)
    except ConfigError as exc:
        fail(str(exc))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    configure(settings.log)
    _use_uvloop()

    async def main() -> None:
        simulator = asyncio.create_task(
            _together(
                serve_simulator("127.0.0.1", sim_port, SimulatorOptions()),
                serve_riva("127.0.0.1", riva_port, RivaOptions()),
            )
        )
        runtime = Runtime(settings)
        server = Server(runtime, host="127.0.0.1", port=_free_port(port))
        try:
            await server.start()
            secret = await _demo_key(runtime)
            password = await _demo_operator(runtime)
            _print_welcome(server.url, secret, password)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
        finally:
            await server.stop()
            simulator.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await simulator

    run(main())


async def _demo_key(runtime: Runtime) -> str:
    """The demo account (created once, topped up to $10) and a new key for this run."""
    db = runtime.db
    account = await db.accounts.by_email(DEMO_EMAIL)
    if account is None:
        from bastion.admin.accounts import AccountAdmin

        account = await AccountAdmin(db, runtime.settings).create(
            email=DEMO_EMAIL, phone=DEMO_PHONE, tier="pro", actor="quickstart"
        )
    funds = await db.ledger.funds(account.id)
    if funds is not None and funds.balance < DEMO_CREDIT_MICROS:
        await runtime.credits.grant(
            account.id, DEMO_CREDIT_MICROS - funds.balance, actor="quickstart", reason="demo credit"
        )
    for old in await db.keys.list_for(account.id):
        if old.is_active and old.label == "quickstart":
            await runtime.keys.revoke(old.id, actor="quickstart", reason="replaced by a new run")
    created = await runtime.keys.create(account.id, "quickstart", actor="quickstart")
    return created.secret


async def _demo_operator(runtime: Runtime) -> str:
    """An operator account for the dashboard, with a fresh random password for this run."""
    from bastion.admin.accounts import AccountAdmin
    from bastion.admin.passwords import hash_password
    from bastion.storage.sql.credentials import SqlCredentials

    db = runtime.db
    account = await db.accounts.by_email(DEMO_OPERATOR)
    if account is None:
        account = await AccountAdmin(db, runtime.settings).create(
            email=DEMO_OPERATOR, phone=DEMO_PHONE, tier="pro", actor="quickstart", role="operator"
        )
    password = secrets.token_urlsafe(12)
    await SqlCredentials(db.engine).set_password(
        account.id, await hash_password(password), actor="quickstart"
    )
    return password


def _print_welcome(url: str, secret: str, password: str) -> None:
    out = sys.stdout
    print(
        f"""
Bastion is running at {url} (plain HTTP on loopback: local development only),
in front of the built-in simulator (its answers are simulated, not a real model).

Demo key (shown once; a new one is made at every start):

    {secret}

Try it with curl:

    curl {url}/v1/chat/completions \\
      -H "Authorization: Bearer {secret}" \\
      -H "Content-Type: application/json" \\
      -d '{{"model": "gpt-oss-120b", "messages": [{{"role": "user", "content": "Hello!"}}]}}'

Or with the OpenAI Python SDK:

    from openai import OpenAI
    client = OpenAI(base_url="{url}/v1", api_key="{secret}")
    reply = client.chat.completions.create(
        model="gpt-oss-120b", messages=[{{"role": "user", "content": "Hello!"}}]
    )
    print(reply.choices[0].message.content)

Text to speech (NVIDIA Riva's shape; encoding 1 = LINEAR_PCM), saved as a playable WAV file:

    curl {url}/api/v1/tts/text_to_audio \\
      -H "Authorization: Bearer {secret}" \\
      -H "Content-Type: application/json" \\
      -H "Accept: audio/wav" \\
      -d '{{"text": "Hello from Bastion!", "language_code": "en-US", "encoding": 1,
           "sample_rate_hz": 22050, "voice_name": "English-US.Female-1"}}' \\
      -o hello.wav

The dashboard: {url}/dashboard/
Sign up as a customer (the phone verification code is printed in this log), or sign in as
the demo operator: {DEMO_OPERATOR} / {password} (a new password at every start).

Press Ctrl-C to stop.
""",
        file=out,
        flush=True,
    )


@click.command("reload")
@json_option
@pass_ctx
def reload_command(ctx: CliContext) -> None:
    """Make running gateways re-read the configuration (catalog, tiers, upstreams, billing).

    Scaled out: every replica, through the Redis doorbell.  Embedded: the gateway serving
    this data directory, through SIGHUP."""
    settings = ctx.settings  # validates the file first: a broken file reaches nobody
    if settings.storage.redis_url:
        run(ring_doorbell(settings, RELOAD))
        emit(ctx, {"reloaded": "all replicas"}, "asked every replica to reload")
        return
    lock = ProcessLock(Path(settings.storage.database_url[len("sqlite:///") :]))
    pid = lock.holder()
    if pid is None:
        fail(f"no gateway is serving {lock.path.with_suffix('')}")
    os.kill(pid, signal.SIGHUP)
    emit(ctx, {"reloaded": pid}, f"asked the gateway (pid {pid}) to reload")


def register(group: click.Group) -> None:
    for command in (serve, simulate, migrate, quickstart, reload_command):
        group.add_command(command)

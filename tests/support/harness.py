"""A real gateway and a real simulator on loopback sockets, in the test's event loop.

``Stack`` starts the simulator, builds settings from the shipped example configuration (with
per-test overrides deep-merged into it), starts the gateway listener, and offers helpers to
create accounts, grant credit and make keys through the same use cases as the CLI.
"""

from __future__ import annotations

import asyncio
import atexit
import copy
import shutil
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import openai
from aiohttp import web

from bastion.core.clock import Clock
from bastion.core.records import AccountRecord
from bastion.http.server import Server
from bastion.runtime import Runtime
from bastion.settings import Settings, parse_settings
from bastion.simulator import SimulatorOptions, create_app

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "bastion.toml"


def merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def example_document() -> dict[str, Any]:
    return tomllib.loads(EXAMPLE.read_text())


def make_settings(
    data_dir: Path,
    simulator_url: str,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    document = merge(example_document(), overrides or {})
    env = {"BASTION_SIMULATOR_URL": simulator_url, **(environ or {})}
    return parse_settings(document, str(EXAMPLE), env, data_dir=str(data_dir))


async def start_simulator(options: SimulatorOptions | None = None) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(
        create_app(options or SimulatorOptions(tokens_per_second=0, first_token_ms=0)),
        handler_cancellation=True,
        shutdown_timeout=0.5,
        access_log=None,
    )
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


@dataclass
class Stack:
    server: Server
    simulator_url: str
    http: aiohttp.ClientSession
    _clients: list[openai.AsyncOpenAI] = field(default_factory=list)

    @property
    def runtime(self) -> Runtime:
        return self.server.runtime

    @property
    def url(self) -> str:
        return self.server.url

    async def account(
        self, usd: str | None = "10", tier: str = "pro", email: str | None = None
    ) -> AccountRecord:
        from bastion.admin.accounts import AccountAdmin
        from bastion.core.keys import new_id
        from bastion.core.money import parse_usd

        admin = AccountAdmin(self.runtime.db, self.runtime.settings)
        account = await admin.create(
            email=email or f"{new_id('u')}@example.com",
            phone="+14155550100",
            tier=tier,
            actor="test",
        )
        if usd is not None and parse_usd(usd) > 0:
            await self.runtime.credits.grant(account.id, parse_usd(usd), actor="test")
        return account

    async def key(self, account_id: str, label: str = "test") -> str:
        created = await self.runtime.keys.create(account_id, label, actor="test")
        return created.secret

    async def account_and_key(self, usd: str | None = "10", tier: str = "pro") -> tuple[str, str]:
        account = await self.account(usd, tier)
        return account.id, await self.key(account.id)

    def client(self, key: str, **kwargs: Any) -> openai.AsyncOpenAI:
        sdk = openai.AsyncOpenAI(
            base_url=f"{self.url}/v1", api_key=key, max_retries=0, timeout=30, **kwargs
        )
        self._clients.append(sdk)
        return sdk

    async def sim_control(self, **options: Any) -> None:
        async with self.http.post(f"{self.simulator_url}/_simulator/control", json=options) as r:
            assert r.status == 200, await r.text()

    async def sim_stats(self) -> dict[str, int]:
        async with self.http.get(f"{self.simulator_url}/_simulator/stats") as r:
            data: dict[str, int] = await r.json()
            return data

    async def sim_journal(self) -> list[dict[str, Any]]:
        async with self.http.get(f"{self.simulator_url}/_simulator/requests") as r:
            data: list[dict[str, Any]] = await r.json()
            return data

    async def settled(self) -> None:
        """Wait until every request in flight has ended (an answer can reach its client a
        moment before its request releases its hold: it leaves from the commit) and every
        queued settlement and request log row is written."""
        for _ in range(1000):  # bounded: 10 s
            if self.runtime.metrics.active == 0:
                break
            await asyncio.sleep(0.01)
        # A request whose client left (closing its connection) ends at once: its charge,
        # release and usage row finish in the background.
        await self.runtime.db.settlements.flush()
        await self.runtime.gateway.drain(10.0)
        await self.runtime.admission_store.drain()
        await self.runtime.db.settlements.flush()

    async def close(self) -> None:
        for sdk in self._clients:
            await sdk.close()
        await self.server.stop()


_TEMPLATE: list[Path] = []  # a migrated, empty SQLite database, made once per test process


async def seed_database(settings: Settings) -> None:
    """Give a fresh embedded data directory a copy of a migrated empty database: the state
    ``Runtime.start`` reaches by auto-migrating, without running every migration per test."""
    storage = settings.storage
    target = settings.data_dir / "bastion.db"
    if not storage.auto_migrate or storage.database_url != f"sqlite:///{target}":
        return
    if target.exists():
        return
    if not _TEMPLATE:
        from bastion.storage.sql.database import Database

        directory = Path(tempfile.mkdtemp(prefix="bastion-template-"))
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        template = directory / "bastion.db"
        db = Database.open(replace(storage, database_url=f"sqlite:///{template}"))
        try:
            await db.migrate()
        finally:
            await db.close()
        if any(directory.glob("bastion.db-*")):  # not checkpointed: migrate per test instead
            return
        _TEMPLATE.append(template)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_TEMPLATE[0], target)


async def start_stack(
    data_dir: Path,
    overrides: Mapping[str, Any] | None = None,
    *,
    simulator_url: str,
    http: aiohttp.ClientSession,
    clock: Clock | None = None,
    riva_url: str | None = None,
) -> Stack:
    environ = {"BASTION_RIVA_URL": riva_url} if riva_url else None
    settings = make_settings(data_dir, simulator_url, overrides, environ)
    await seed_database(settings)
    server = Server(Runtime(settings, clock=clock), host="127.0.0.1", port=0)
    await server.start()
    return Stack(server=server, simulator_url=simulator_url, http=http)

"""A scaled-out deployment on loopback: N ``bastion serve`` replicas sharing PostgreSQL and
Redis, a ``bastion simulate`` upstream, and helpers to drive them with the OpenAI SDK."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai

from bastion.admin.accounts import AccountAdmin
from bastion.admin.credits import CreditAdmin
from bastion.admin.keys import KeyAdmin
from bastion.core.money import parse_usd
from bastion.settings import Settings, load_settings
from bastion.storage.sql.database import Database
from tests.support.ports import free_port
from tests.support.processes import EXAMPLE, Processes, bastion, environment


@dataclass
class Cluster:
    processes: Processes
    env: dict[str, str]
    sim_port: int
    db: Database
    settings: Settings
    ports: list[int] = field(default_factory=list)
    clients: list[openai.AsyncOpenAI] = field(default_factory=list)

    def url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.ports[index]}"

    async def cli(self, *args: str) -> Any:
        """One CLI command, in a thread: the test's event loop keeps serving (a proxy in it)."""
        return json.loads(await asyncio.to_thread(bastion, self.env, *args, "--json"))

    async def start_replica(self, index: int, extra: dict[str, str] | None = None) -> None:
        if index >= len(self.ports):
            self.ports.append(free_port())
        env = {**self.env, "BASTION_PORT": str(self.ports[index]), **(extra or {})}
        self.processes.start(f"replica-{index}", ["serve"], env)
        await self.processes.wait_http(f"replica-{index}", f"{self.url(index)}/healthz")

    def kill(self, index: int) -> None:
        process = self.processes.process(f"replica-{index}")
        os.kill(process.pid, signal.SIGKILL)
        process.wait()

    async def account(self, usd: str, tier: str = "enterprise") -> tuple[str, str, str]:
        """(account id, key id, key secret) with ``usd`` of credit: made through the same
        use cases as the CLI, in this process (a CLI process per call would be slow)."""
        account = await AccountAdmin(self.db, self.settings).create(
            email=f"{secrets.token_hex(5)}@example.com",
            phone="+14155550100",
            tier=tier,
            actor="test",
        )
        if parse_usd(usd):
            await CreditAdmin(self.db).grant(account.id, parse_usd(usd), actor="test")
        created = await KeyAdmin(self.db).create(account.id, "cluster", actor="test")
        return account.id, created.record.id, created.secret

    def client(self, index: int, key: str) -> openai.AsyncOpenAI:
        sdk = openai.AsyncOpenAI(
            base_url=f"{self.url(index)}/v1", api_key=key, max_retries=0, timeout=30
        )
        self.clients.append(sdk)
        return sdk

    async def charges(self, account_id: str) -> dict[str, int]:
        """What each request costs the account: its charge, unless refunded (a charge whose
        commit was in doubt when its client got 503 is voided by a refund)."""
        history = await self.db.ledger.entries(account_id, limit=100_000)
        refunded = {e["request_id"] for e in history if e["kind"] == "refund"}
        return {
            e["request_id"]: -e["amount"]
            for e in history
            if e["kind"] == "charge" and e["request_id"] not in refunded
        }

    async def close(self) -> None:
        for sdk in self.clients:
            await sdk.close()
        self.processes.stop_all()
        await self.db.close()


async def start_cluster(
    tmp_path: Path,
    database_url: str,
    redis_url: str,
    replicas: int = 3,
    extra_env: dict[str, str] | None = None,
    sim_args: tuple[str, ...] = ("--tokens-per-second", "0", "--first-token-ms", "0"),
) -> Cluster:
    processes = Processes(tmp_path)
    sim_port = free_port()
    env = {
        "BASTION_SIMULATOR_URL": f"http://127.0.0.1:{sim_port}",
        "BASTION_DATABASE_URL": database_url,
        "BASTION_REDIS_URL": redis_url,
        "BASTION_REDIS_PREFIX": f"bastion:test:{secrets.token_hex(6)}:",
        "BASTION_DATA_DIR": str(tmp_path / "data"),
        "BASTION_LOG_LEVEL": "WARNING",
        "BASTION_STORE_TIMEOUT_S": "2",
        **(extra_env or {}),
    }
    settings = load_settings(EXAMPLE, environment(env))
    cluster = Cluster(processes, env, sim_port, Database.open(settings.storage), settings)
    processes.start(
        "simulator", ["simulate", "--port", str(sim_port), "--riva-port", "0", *sim_args]
    )
    await processes.wait_http("simulator", f"http://127.0.0.1:{sim_port}/v1/models")
    await asyncio.to_thread(bastion, env, "migrate")
    await asyncio.gather(*(cluster.start_replica(i) for i in range(replicas)))
    return cluster


def run_quietly(*command: str) -> None:
    subprocess.run(command, check=False, capture_output=True, timeout=30)

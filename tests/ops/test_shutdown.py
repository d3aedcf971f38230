"""Graceful shutdown of a real ``bastion serve`` process on SIGTERM: new connections are
refused, open streams finish (or are cut at the grace deadline and billed by the client-gone
rule), every charge is durable, and the process exits 0."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from bastion.admin.accounts import AccountAdmin
from bastion.admin.credits import CreditAdmin
from bastion.admin.keys import KeyAdmin
from bastion.settings import load_settings
from bastion.simulator import SimulatorOptions
from bastion.storage.sql.database import Database
from tests.ops.conftest import announced
from tests.support.harness import start_simulator
from tests.support.processes import EXAMPLE, Processes, environment

pytestmark = [pytest.mark.e2e]

TOKENS_PER_SECOND = 20


@dataclass
class Gateway:
    processes: Processes
    env: dict[str, str]
    port: int
    key: str
    data: Path

    @property
    def process(self) -> subprocess.Popen[bytes]:
        return self.processes.process("gateway")

    def charge(self, request_id: str) -> tuple[int, dict[str, int]] | None:
        with sqlite3.connect(self.data / "bastion.db") as db:
            row = db.execute(
                "SELECT amount, usage FROM ledger WHERE kind = 'charge' AND request_id = ?",
                (request_id,),
            ).fetchone()
        return None if row is None else (-int(row[0]), json.loads(row[1]))


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    running = Processes(tmp_path)
    yield running
    running.stop_all()


_SIMULATOR: list[str] = []


def simulator_url() -> str:
    assert _SIMULATOR
    return _SIMULATOR[0]


@pytest.fixture(autouse=True)
async def simulator() -> AsyncIterator[str]:
    """The upstream, paced so that a stream is still open when SIGTERM arrives."""
    runner, url = await start_simulator(
        SimulatorOptions(tokens_per_second=TOKENS_PER_SECOND, first_token_ms=0)
    )
    _SIMULATOR[:] = [url]
    yield url
    _SIMULATOR.clear()
    await runner.cleanup()


async def start(processes: Processes, tmp_path: Path, grace_s: float) -> Gateway:
    """A real gateway process in front of an in-process simulator; the account and key are
    made in this process, on the gateway's database, before it starts (no CLI start-up)."""
    env = {
        "BASTION_SIMULATOR_URL": simulator_url(),
        "BASTION_PORT": "0",
        "BASTION_DATA_DIR": str(tmp_path / "data"),
        "BASTION_SHUTDOWN_GRACE_S": str(grace_s),
    }
    settings = load_settings(EXAMPLE, environment(env))
    settings.data_dir.mkdir(parents=True)
    db = Database.open(settings.storage)
    try:
        await db.migrate()
        account = await AccountAdmin(db, settings).create(
            email="drain@example.com", phone="+14155550100", tier="pro", actor="test"
        )
        await CreditAdmin(db).grant(account.id, 10_000_000, actor="test")
        key = (await KeyAdmin(db).create(account.id, "drain", actor="test")).secret
    finally:
        await db.close()
    processes.start("gateway", ["serve"], env)
    port = int(await announced(processes, "gateway", r"listening on http://127\.0\.0\.1:(\d+)"))
    await processes.wait_http("gateway", f"http://127.0.0.1:{port}/healthz")
    return Gateway(processes, env, port, key, settings.data_dir)


async def open_stream(
    http: aiohttp.ClientSession, gateway: Gateway, max_tokens: int
) -> tuple[aiohttp.ClientResponse, str]:
    response = await http.post(
        f"http://127.0.0.1:{gateway.port}/v1/chat/completions",
        headers={"Authorization": f"Bearer {gateway.key}"},
        json={
            "model": "gpt-oss-20b",
            "messages": [{"role": "user", "content": "a long answer, please"}],
            "max_tokens": max_tokens,
            "ignore_eos": True,  # the simulator then produces exactly max_tokens tokens
            "stream": True,
        },
    )
    assert response.status == 200, await response.text()
    first = await response.content.readuntil(b"\n\n")
    assert first.startswith(b"data: {")
    return response, response.headers["x-request-id"]


async def refused(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except (ConnectionRefusedError, ConnectionResetError):
        return True  # reset: accepted into the backlog just as the listening socket closed
    writer.close()
    return False


async def exit_code(process: subprocess.Popen[bytes]) -> int:
    for _ in range(600):  # bounded: 30 s
        code = process.poll()
        if code is not None:
            return code
        await asyncio.sleep(0.05)
    raise AssertionError("the gateway did not exit after SIGTERM")


async def test_sigterm_lets_an_open_stream_finish_and_settles_it(
    processes: Processes, tmp_path: Path
) -> None:
    gateway = await start(processes, tmp_path, grace_s=30)
    async with aiohttp.ClientSession() as http:
        # 40 tokens at 20 per second: the stream is still going when SIGTERM arrives
        response, request_id = await open_stream(http, gateway, max_tokens=40)
        os.kill(gateway.process.pid, signal.SIGTERM)
        for _ in range(200):  # the listening socket closes at once (bounded wait)
            if await refused(gateway.port):
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("new connections were still accepted during the drain")
        assert not response.content.at_eof(), "the stream was cut instead of drained"
        rest = await response.content.read()
        response.release()
    assert rest.endswith(b"data: [DONE]\n\n"), rest[-200:]
    assert rest.count(b"data: {") >= 39, "every token arrived"
    assert await exit_code(gateway.process) == 0
    charge = gateway.charge(request_id)
    assert charge is not None, "the drained stream's charge is not in the ledger"
    amount, usage = charge
    assert amount > 0
    assert usage["output_tokens"] == 40
    log = processes.log("gateway")
    assert "draining: 1 requests in flight" in log
    assert '"msg":"stopped"' in log


async def test_a_stream_open_at_the_grace_deadline_is_cut_and_billed(
    processes: Processes, tmp_path: Path
) -> None:
    gateway = await start(processes, tmp_path, grace_s=0.5)
    async with aiohttp.ClientSession() as http:
        # 400 tokens at 20 per second: 20 s, far past the half-second grace
        response, request_id = await open_stream(http, gateway, max_tokens=400)
        os.kill(gateway.process.pid, signal.SIGTERM)
        try:
            rest = await response.content.read()
        except aiohttp.ClientPayloadError:
            rest = b""  # cut mid-chunk: the same outcome for the client
        response.release()
    assert b"[DONE]" not in rest
    assert await exit_code(gateway.process) == 0
    charge = gateway.charge(request_id)
    assert charge is not None, "the cut stream was not billed"
    amount, usage = charge
    assert amount > 0
    # the client-gone rule: the prompt and the output produced until the cut
    assert 1 <= usage["output_tokens"] < 400
    assert usage["input_tokens"] > 0
    settings = load_settings(EXAMPLE, environment(gateway.env))
    db = Database.open(settings.storage)
    try:
        _checked, mismatches = await db.ledger.verify()
    finally:
        await db.close()
    assert mismatches == []

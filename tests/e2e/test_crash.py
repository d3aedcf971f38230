"""kill -9 of the gateway under streaming and non-streaming load, then restart.

Real processes (``bastion simulate``, ``bastion serve``), real sockets, the real SDK. After the
crash: every response a client received in full has exactly one charge, no request the gateway
refused is charged, and ``bastion ledger verify`` passes.

A request cut by the crash has an outcome the client cannot know (Jepsen's ``info``): commit
before completion means its charge may be durable while its last bytes never left the dying
process. So charges beyond the completed responses are allowed, but only for requests that
were in flight at the kill, at most one per worker (reliability.md, BAL-2).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.support.ports import free_port
from tests.support.processes import Processes, bastion

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

WORKERS = 24


async def _worker(
    client: openai.AsyncOpenAI,
    index: int,
    stop: asyncio.Event,
    done: list[str],
    failed: list[Any],
    refused: list[str],
    in_flight: set[int],
) -> None:
    turn = 0
    while not stop.is_set():
        turn += 1
        messages = [{"role": "user", "content": f"worker {index} turn {turn}"}]
        in_flight.add(index)
        try:
            if turn % 2:
                raw = await client.chat.completions.with_raw_response.create(
                    model="gpt-oss-20b", messages=messages, max_tokens=12
                )
                raw.parse()
                done.append(raw.headers["x-request-id"])
            else:
                async with client.chat.completions.with_streaming_response.create(
                    model="gpt-oss-20b", messages=messages, max_tokens=12, stream=True
                ) as response:
                    request_id = response.headers["x-request-id"]
                    async for _chunk in await response.parse():
                        pass
                done.append(request_id)
        except openai.APIStatusError as error:  # a definite refusal: must cost nothing
            refused.append(error.response.headers.get("x-request-id", ""))
            failed.append(type(error).__name__)
            await asyncio.sleep(0.05)
        except (openai.APIError, OSError) as error:
            failed.append(type(error).__name__)
            await asyncio.sleep(0.05)
        finally:
            in_flight.discard(index)


async def test_kill_9_under_load_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    processes = Processes(tmp_path)
    try:
        sim_port, port = free_port(), free_port()
        processes.start(
            "simulator",
            [
                "simulate",
                "--port",
                str(sim_port),
                "--tokens-per-second",
                "400",
                "--first-token-ms",
                "2",
            ],
        )
        env = {
            "BASTION_SIMULATOR_URL": f"http://127.0.0.1:{sim_port}",
            "BASTION_PORT": str(port),
            "BASTION_DATA_DIR": str(tmp_path / "data"),
            "BASTION_LOG_LEVEL": "WARNING",
        }
        created = json.loads(
            bastion(
                env,
                "accounts",
                "create",
                "--email",
                "crash@example.com",
                "--phone",
                "+14155550100",
                "--tier",
                "enterprise",
                "--json",
            )
        )
        bastion(env, "credits", "grant", created["id"], "100")
        key = json.loads(bastion(env, "keys", "create", created["id"], "--label", "load", "--json"))
        await processes.wait_http("simulator", f"http://127.0.0.1:{sim_port}/v1/models")

        gateway = processes.start("gateway", ["serve"], env)
        await processes.wait_http("gateway", f"http://127.0.0.1:{port}/healthz")

        client = openai.AsyncOpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key=key["key"], max_retries=0, timeout=10
        )
        stop = asyncio.Event()
        done: list[str] = []
        failed: list[Any] = []
        refused: list[str] = []
        in_flight: set[int] = set()
        workers = [
            asyncio.ensure_future(_worker(client, i, stop, done, failed, refused, in_flight))
            for i in range(WORKERS)
        ]
        for _ in range(1500):  # well into steady load (bounded: 30 s)
            if len(done) >= 150:
                break
            await asyncio.sleep(0.02)
        assert len(done) >= 150, (failed[:5], processes.log("gateway")[-2000:])
        # No await between the count and the kill: no request can start in between.
        in_flight_at_kill = len(in_flight)
        os.kill(gateway.pid, signal.SIGKILL)
        gateway.wait()
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.gather(*workers)
        await client.close()
        assert failed, "the crash should have cut some requests"

        # Restart on the same data directory: the store of record is all that survived.
        processes.start("gateway-2", ["serve"], env)
        await processes.wait_http("gateway-2", f"http://127.0.0.1:{port}/healthz")
        verify = json.loads(bastion(env, "ledger", "verify", "--json"))
        assert verify["ok"], verify

        with sqlite3.connect(tmp_path / "data" / "bastion.db") as db:
            charged = [
                row[0] for row in db.execute("SELECT request_id FROM ledger WHERE kind = 'charge'")
            ]
        assert len(charged) == len(set(charged))  # never twice
        assert set(done) <= set(charged)  # every response received in full was charged
        assert not set(refused) & set(charged)  # a refused request costs nothing
        # Charged but not received in full: only requests the kill cut, at most one per worker.
        assert len(set(charged) - set(done)) <= in_flight_at_kill, (in_flight_at_kill, failed)
    finally:
        processes.stop_all()

"""``bastion reload``: a running gateway picks up catalog changes without a restart
(SIGHUP in the embedded topology; the Redis doorbell reaches every replica when scaled out)."""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path

import openai
import pytest

from tests.support.ports import free_port
from tests.support.processes import EXAMPLE, Processes, bastion
from tests.support.services import REDIS, worker_number

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NEW_MODEL = """
[models."reloaded-model"]
category = "chat"
price = { input_per_mtok = "0.1", output_per_mtok = "0.1" }
deployments = [{ upstream = "simulator", model = "gpt-oss-20b" }]
"""


async def _ask(url: str, key: str) -> int:
    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0) as client:
        try:
            reply = await client.chat.completions.create(
                model="reloaded-model", messages=[{"role": "user", "content": "hi"}], max_tokens=2
            )
        except openai.BadRequestError as error:
            return 400 if error.code == "model_not_found" else 0
        assert reply.model == "reloaded-model"
        return 200


async def _eventually_served(url: str, key: str) -> None:
    for _ in range(200):
        if await _ask(url, key) == 200:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{url} never served the reloaded model")


@pytest.mark.parametrize(
    "topology",
    ["embedded", pytest.param("scaled", marks=[pytest.mark.postgres, pytest.mark.redis])],
)
async def test_reload_adds_a_model_to_running_gateways(
    tmp_path: Path, topology: str, request: pytest.FixtureRequest
) -> None:
    config = tmp_path / "bastion.toml"
    config.write_text(EXAMPLE.read_text())
    processes = Processes(tmp_path)
    sim_port = free_port()
    env = {
        "BASTION_CONFIG": str(config),
        "BASTION_SIMULATOR_URL": f"http://127.0.0.1:{sim_port}",
        "BASTION_DATA_DIR": str(tmp_path / "data"),
        "BASTION_LOG_LEVEL": "WARNING",
    }
    replicas = 1
    if topology == "scaled":
        env["BASTION_DATABASE_URL"] = request.getfixturevalue("pg_database")
        env["BASTION_REDIS_URL"] = f"{REDIS}/{1 + worker_number() % 15}"
        env["BASTION_REDIS_PREFIX"] = f"bastion:test:{secrets.token_hex(6)}:"
        replicas = 2
    try:
        processes.start("simulator", ["simulate", "--port", str(sim_port), "--riva-port", "0"])
        await processes.wait_http("simulator", f"http://127.0.0.1:{sim_port}/v1/models")
        account = json.loads(
            bastion(
                env,
                "accounts",
                "create",
                "--email",
                "r@example.com",
                "--phone",
                "+14155550100",
                "--json",
            )
        )
        bastion(env, "credits", "grant", account["id"], "1")
        key = json.loads(bastion(env, "keys", "create", account["id"], "--label", "r", "--json"))
        urls = []
        for index in range(replicas):
            port = free_port()
            processes.start(f"gateway-{index}", ["serve"], {**env, "BASTION_PORT": str(port)})
            urls.append(f"http://127.0.0.1:{port}")
            await processes.wait_http(f"gateway-{index}", f"{urls[-1]}/healthz")
        for url in urls:
            assert await _ask(url, key["key"]) == 400

        config.write_text(config.read_text() + NEW_MODEL)
        answer = json.loads(bastion(env, "reload", "--json"))
        assert answer["reloaded"]
        for url in urls:
            await _eventually_served(url, key["key"])
    finally:
        processes.stop_all()


def test_reload_refuses_a_broken_file_before_telling_anyone(tmp_path: Path) -> None:
    config = tmp_path / "bastion.toml"
    config.write_text(EXAMPLE.read_text() + '\n[models."broken"]\ncategory = "telepathy"\n')
    with pytest.raises(AssertionError, match=r"models\.broken\.category"):
        bastion({"BASTION_CONFIG": str(config), "BASTION_DATA_DIR": str(tmp_path)}, "reload")

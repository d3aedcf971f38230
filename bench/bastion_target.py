"""Bastion as a benchmark target: its config, a provisioned account with credit and a real
key, and ``bastion serve`` on one core."""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench.upstream import MODEL_JSON, MODEL_PACED, MODEL_SSE

ROOT = Path(__file__).resolve().parent.parent
BASTION = ROOT / ".venv" / "bin" / "bastion"

# Limits far above anything the benchmark sends, so that none of them triggers; metering,
# holds and the credit check all run as in production.
BENCH_TIER = "bench"
RPM = 1_000_000_000
CONCURRENCY = 100_000
CREDIT_USD = "1000000"


def config_text(
    nginx_port: int, simulator_port: int, *, access_log: bool, synchronous: str | None = None
) -> str:
    """The benchmark's configuration (``${...}`` values come from the environment)."""
    timeouts = "{ connect_s = 3, first_byte_s = 60, between_chunks_s = 60, total_s = 600 }"
    price = '{ input_per_mtok = "0.15", output_per_mtok = "0.60" }'
    return f"""# Written by bench/ for one run; see docs/performance.md.
[listener]
host = "127.0.0.1"
port = "${{BASTION_PORT}}"

[storage]
database_url = "${{BASTION_DATABASE_URL:-}}"
redis_url = "${{BASTION_REDIS_URL:-}}"
{f'sqlite_synchronous = "{synchronous}"' if synchronous else "# sqlite_synchronous: the default"}

[billing]
default_tier = "{BENCH_TIER}"

[log]
level = "INFO"
format = "json"
access_log = {"true" if access_log else "false"}

[tiers.{BENCH_TIER}]
requests_per_minute = {RPM}
concurrent_requests = {CONCURRENCY}

[upstreams.nginx-json]
base_url = "http://127.0.0.1:{nginx_port}/json"
timeouts = {timeouts}

[upstreams.nginx-sse]
base_url = "http://127.0.0.1:{nginx_port}/sse"
timeouts = {timeouts}

[upstreams.simulator]
base_url = "http://127.0.0.1:{simulator_port}"
continuous_usage = true
timeouts = {timeouts}

[models."{MODEL_JSON}"]
category = "chat"
endpoints = ["chat"]
price = {price}
deployments = [{{ upstream = "nginx-json" }}]

[models."{MODEL_SSE}"]
category = "chat"
endpoints = ["chat"]
price = {price}
deployments = [{{ upstream = "nginx-sse" }}]

[models."{MODEL_PACED}"]
category = "chat"
endpoints = ["chat"]
price = {price}
deployments = [{{ upstream = "simulator" }}]
"""


@dataclass(frozen=True)
class BastionSetup:
    config: Path
    env: dict[str, str]


def setup(
    workdir: Path,
    nginx_port: int,
    simulator_port: int,
    port: int,
    *,
    database_url: str = "",
    redis_url: str = "",
    access_log: bool = True,
    synchronous: str | None = None,
) -> BastionSetup:
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "bastion.toml"
    config.write_text(
        config_text(nginx_port, simulator_port, access_log=access_log, synchronous=synchronous)
    )
    env = {
        "BASTION_CONFIG": str(config),
        "BASTION_DATA_DIR": str(workdir / "data"),
        "BASTION_PORT": str(port),
        "BASTION_DATABASE_URL": database_url,
        "BASTION_REDIS_URL": redis_url,
    }
    return BastionSetup(config, env)


def _cli(env: dict[str, str], *args: str) -> dict[str, object]:
    done = subprocess.run(
        [str(BASTION), "--json", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bastion {' '.join(args[:2])} failed: {done.stderr.strip()[-800:]}")
    data = json.loads(done.stdout)
    assert isinstance(data, dict)
    return data


def provision(env: dict[str, str]) -> str:
    """An operator-created account on the bench tier, a million USD of credit, and a key."""
    account = _cli(
        env,
        "accounts",
        "create",
        "--email",
        f"bench-{os.getpid()}-{time.monotonic_ns()}@bastion.local",
        "--phone",
        "+14155550100",
        "--tier",
        BENCH_TIER,
    )
    account_id = str(account["id"])
    _cli(env, "credits", "grant", account_id, CREDIT_USD, "--reason", "benchmark")
    key = _cli(env, "keys", "create", account_id, "--label", "bench")
    return str(key["key"])


def serve_command() -> list[str]:
    return [str(BASTION), "serve"]

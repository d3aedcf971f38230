"""LiteLLM's proxy as a benchmark target, from PyPI in its own virtual environment.

Two configurations:

- ``litellm-basic``: the master key only (no per-key state at all);
- ``litellm-keys``: the configuration comparable to Bastion's: per-key auth, its Redis rate
  limiter (``coordination_redis``), a per-key budget checked on every request
  (``custom_auth_run_common_checks``) and cost tracking (model prices, spend counters).

LiteLLM keeps virtual keys in PostgreSQL through Prisma, whose query engine is downloaded at
run time; that download cannot happen on this machine, so the per-key auth comes from
LiteLLM's custom-auth hook (a function returning the key's limits and budget) instead of its
database.  Everything after authentication is LiteLLM's own code path.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from bench.upstream import MODEL_JSON, MODEL_PACED, MODEL_SSE

BENCH_DIR = Path(__file__).resolve().parent
VENV = BENCH_DIR / ".venv-litellm"
REQUIREMENTS = BENCH_DIR / "litellm-requirements.txt"
MASTER_KEY = "sk-bench-master-0000000000000000"
USER_KEY = "sk-bench-user-00000000000000000000"

CUSTOM_AUTH = f'''"""Per-key auth for the benchmark (LiteLLM's custom-auth hook)."""

from fastapi import Request
from litellm.proxy._types import UserAPIKeyAuth

KEYS = {{
    {USER_KEY!r}: dict(
        key_alias="bench",
        user_id="bench-user",
        rpm_limit=1_000_000_000,
        tpm_limit=1_000_000_000_000,
        max_budget=1_000_000.0,
        spend=0.0,
    ),
}}


async def user_api_key_auth(request: Request, api_key: str) -> UserAPIKeyAuth:
    key = api_key.removeprefix("Bearer ").strip()
    found = KEYS.get(key)
    if found is None:
        raise Exception("invalid api key")
    return UserAPIKeyAuth(api_key=key, **found)
'''


def litellm_bin() -> Path:
    return VENV / "bin" / "litellm"


def ensure_installed() -> str:
    """Create or update the venv from the pinned requirements; returns LiteLLM's version."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    stamp = VENV / ".bench-installed"
    if not (stamp.exists() and stamp.read_text() == digest and litellm_bin().exists()):
        print("bench: installing LiteLLM into bench/.venv-litellm (a few minutes)", file=sys.stderr)
        if not (VENV / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [
                str(VENV / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
                str(REQUIREMENTS),
            ],
            check=True,
        )
        stamp.write_text(digest)
    done = subprocess.run(
        [
            str(VENV / "bin" / "python"),
            "-c",
            "import importlib.metadata as m;print(m.version('litellm'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def _model(name: str, api_base: str) -> str:
    return f"""  - model_name: {name}
    litellm_params:
      model: openai/{name}
      api_base: {api_base}
      api_key: sk-upstream-not-checked
    model_info:
      input_cost_per_token: 0.00000015
      output_cost_per_token: 0.0000006
"""


def write_config(
    workdir: Path, nginx_port: int, simulator_port: int, *, per_key: bool, redis_url: str
) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    models = (
        _model(MODEL_JSON, f"http://127.0.0.1:{nginx_port}/json/v1")
        + _model(MODEL_SSE, f"http://127.0.0.1:{nginx_port}/sse/v1")
        + _model(MODEL_PACED, f"http://127.0.0.1:{simulator_port}/v1")
    )
    general = f"  master_key: {MASTER_KEY}\n"
    if per_key:
        (workdir / "bench_custom_auth.py").write_text(CUSTOM_AUTH)
        general += (
            "  custom_auth: bench_custom_auth.user_api_key_auth\n"
            "  custom_auth_run_common_checks: true\n"
            "  coordination_redis:\n"
            f"    url: {redis_url}\n"
        )
    config = workdir / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        + models
        + "general_settings:\n"
        + general
        + "litellm_settings:\n  drop_params: true\n  telemetry: false\n"
    )
    return config


def serve_command(config: Path, port: int) -> list[str]:
    return [
        str(litellm_bin()),
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        "1",
    ]


def serve_env(workdir: Path) -> dict[str, str | None]:
    return {
        "PYTHONPATH": str(workdir),  # the custom-auth module
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "DISABLE_ADMIN_UI": "True",
        "DATABASE_URL": None,  # no database: see the module's docstring
        "REDIS_HOST": None,
        "REDIS_URL": None,
    }


def api_key(per_key: bool) -> str:
    return USER_KEY if per_key else MASTER_KEY

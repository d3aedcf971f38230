"""Schemathesis against a running gateway (and the simulators behind it), driven by the
OpenAPI document the gateway serves: no 500s, every error in the envelope, every status,
content type, header and body as documented, invalid input refused with a 4xx, missing or
bad keys refused with 401, unlisted methods with 405 and an ``Allow`` header.

The run is bounded (a fixed number of examples per operation and phase) and deterministic (a
fixed seed); ``fuzz/README.md`` shows the longer run.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bastion.simulator.riva import RivaOptions, RivaSimulator, start_riva
from tests.support.harness import Stack, start_stack

ROOT = Path(__file__).resolve().parents[2]
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
# the CI run; a longer one: BASTION_SCHEMATHESIS_EXAMPLES=500 BASTION_SCHEMATHESIS_SEED=random
MAX_EXAMPLES = int(os.environ.get("BASTION_SCHEMATHESIS_EXAMPLES", "12"))
SEED = os.environ.get("BASTION_SCHEMATHESIS_SEED", "20261126")
CHECKS = ",".join(
    [
        "no_internal_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "unsupported_method",
        "allow_header_conformance",
        "ignored_auth",
        "missing_required_header",
    ]
)


@pytest.fixture
def config() -> dict[str, Any]:
    # one key for the whole run: no limit of its tier may stand in the way of a test
    return {"tiers": {"pro": {"requests_per_minute": 1_000_000, "concurrent_requests": 64}}}


@pytest.fixture
async def riva() -> AsyncIterator[RivaSimulator]:
    simulator = await start_riva("127.0.0.1", 0, RivaOptions(voice="tones"))
    yield simulator
    await simulator.stop(None)


@pytest.fixture
async def stack(
    tmp_path: Path,
    config: dict[str, Any],
    simulator_url: str,
    http: aiohttp.ClientSession,
    riva: RivaSimulator,
) -> AsyncIterator[Stack]:
    stack = await start_stack(
        tmp_path, config, simulator_url=simulator_url, http=http, riva_url=riva.url
    )
    yield stack
    await stack.close()


@pytest.mark.slow
async def test_schemathesis_finds_nothing(stack: Stack, tmp_path: Path) -> None:
    _, key = await stack.account_and_key("1000")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SCHEMATHESIS_")},
        "SCHEMATHESIS_HOOKS": "tests.ops.schemathesis_hooks",
        "PYTHONPATH": str(ROOT),
        "NO_COLOR": "1",
    }
    process = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS),
        "run",
        f"{stack.url}/openapi.json",
        "--header",
        f"Authorization: Bearer {key}",
        "--checks",
        CHECKS,
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(MAX_EXAMPLES),
        *(["--seed", SEED, "--generation-deterministic"] if SEED != "random" else []),
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--suppress-health-check",
        "all",
        "--warnings",
        "off",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    report = output.decode(errors="replace")
    summary = report[report.find("SUMMARY") :]
    print(summary)  # shown with -s: operations, phases and how many cases ran
    assert process.returncode == 0, report[-20000:]
    assert "Tested: 11" in summary, summary

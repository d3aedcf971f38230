"""Shared fixtures: a simulator and a gateway on loopback, the real OpenAI SDK as client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bastion.core.clock import Clock
from bastion.simulator import SimulatorOptions
from tests.support.harness import Stack, start_simulator, start_stack
from tests.support.services import pg_database

__all__ = ["pg_database"]


@pytest.fixture
def sim_options() -> SimulatorOptions:
    # No pacing: tests assert counts and order, never durations.
    return SimulatorOptions(tokens_per_second=0, first_token_ms=0)


@pytest.fixture
async def simulator_url(sim_options: SimulatorOptions) -> AsyncIterator[str]:
    runner, url = await start_simulator(sim_options)
    yield url
    await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def config() -> dict[str, Any]:
    """Overrides merged into examples/bastion.toml for this test (override the fixture)."""
    return {}


@pytest.fixture
def clock() -> Clock | None:
    """The gateway's clock (None: the system clock); override with a FakeClock to move time."""
    return None


@pytest.fixture
async def stack(
    tmp_path: Path,
    config: dict[str, Any],
    simulator_url: str,
    http: aiohttp.ClientSession,
    clock: Clock | None,
) -> AsyncIterator[Stack]:
    stack = await start_stack(tmp_path, config, simulator_url=simulator_url, http=http, clock=clock)
    yield stack
    await stack.close()

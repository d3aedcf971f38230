"""Fixtures: a simulator on 127.0.0.1 (real sockets), the OpenAI SDK and a raw HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import openai
import pytest

from bastion.simulator import SimulatorOptions

from .harness import Simulator, start


@pytest.fixture
def options() -> SimulatorOptions:
    # No pacing: tests assert counts and order, never durations.
    return SimulatorOptions(tokens_per_second=0, first_token_ms=0)


@pytest.fixture
async def simulator(options: SimulatorOptions) -> AsyncIterator[Simulator]:
    runner, url = await start(options)
    yield Simulator(url, options)
    await runner.cleanup()


@pytest.fixture
async def client(simulator: Simulator) -> AsyncIterator[openai.AsyncOpenAI]:
    sdk = openai.AsyncOpenAI(base_url=f"{simulator.url}/v1", api_key="x", max_retries=0)
    yield sdk
    await sdk.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session

"""Fixtures for text to speech: the simulated Riva server on a real gRPC channel, started in
the test's event loop, and the gateway stack pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bastion.simulator.riva import RivaOptions, RivaSimulator, start_riva
from tests.support.harness import Stack, start_stack


@pytest.fixture
def riva_options() -> RivaOptions:
    # The documented synthetic signal: exact lengths, no dependency on espeak-ng.
    return RivaOptions(voice="tones")


@pytest.fixture
async def riva(riva_options: RivaOptions) -> AsyncIterator[RivaSimulator]:
    simulator = await start_riva("127.0.0.1", 0, riva_options)
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

"""Running a simulator in the test's event loop, and waiting for its asynchronous effects."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from bastion.simulator import SimulatorOptions, create_app


@dataclass
class Simulator:
    url: str  # http://127.0.0.1:PORT
    options: SimulatorOptions

    async def stats(self, http: aiohttp.ClientSession) -> dict[str, int]:
        async with http.get(f"{self.url}/_simulator/stats") as response:
            stats: dict[str, int] = await response.json()
            return stats

    async def journal(self, http: aiohttp.ClientSession) -> list[dict[str, Any]]:
        async with http.get(f"{self.url}/_simulator/requests") as response:
            entries: list[dict[str, Any]] = await response.json()
            return entries


async def start(options: SimulatorOptions, *, cancel: bool = True) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(
        create_app(options), handler_cancellation=cancel, shutdown_timeout=0.5, access_log=None
    )
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


async def eventually(check: Callable[[], Awaitable[bool]], attempts: int = 200) -> None:
    """Wait (up to ~4 s) for a condition the server reaches asynchronously."""
    for _ in range(attempts):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")

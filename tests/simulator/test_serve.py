"""serve(): the entry point the CLI runs."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp

from bastion.simulator import SimulatorOptions, serve
from tests.support.ports import free_port


async def test_serve_until_cancelled() -> None:
    port = free_port()
    task = asyncio.create_task(serve("127.0.0.1", port, SimulatorOptions()))
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                try:
                    async with http.get(f"http://127.0.0.1:{port}/v1/models") as response:
                        assert response.status == 200
                        assert response.headers["X-Bastion-Simulator"] == "1"
                        break
                except aiohttp.ClientConnectorError:
                    await asyncio.sleep(0.01)
            else:
                raise AssertionError("simulator did not start")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert task.cancelled()

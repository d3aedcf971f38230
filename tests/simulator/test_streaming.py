"""Pacing and client disconnects on streams (counts and order only, never durations)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import openai
import pytest

from bastion.simulator import SimulatorOptions

from .harness import Simulator, eventually, start
from .test_faults import read_events

CHAT = {"model": "m", "messages": [{"role": "user", "content": "pace me"}]}


@pytest.fixture
def options() -> SimulatorOptions:
    # Fast but real pacing: every token waits for its slot.
    return SimulatorOptions(tokens_per_second=2000, first_token_ms=5)


async def test_paced_stream_has_the_same_chunks_as_an_unpaced_one(
    client: openai.AsyncOpenAI,
) -> None:
    unpaced_runner, unpaced_url = await start(
        SimulatorOptions(tokens_per_second=0, first_token_ms=0)
    )
    unpaced = openai.AsyncOpenAI(base_url=f"{unpaced_url}/v1", api_key="x", max_retries=0)
    try:
        results = []
        for sdk in (client, unpaced):
            stream = await sdk.chat.completions.create(**CHAT, max_tokens=20, stream=True)
            results.append(
                [
                    (chunk.choices[0].delta.content, chunk.choices[0].finish_reason)
                    async for chunk in stream
                ]
            )
    finally:
        await unpaced.close()
        await unpaced_runner.cleanup()
    assert results[0] == results[1]
    assert len(results[0]) == 21


async def test_paced_responses_stream(client: openai.AsyncOpenAI) -> None:
    stream = await client.responses.create(model="m", input="x", max_output_tokens=16, stream=True)
    kinds = [event.type async for event in stream]
    assert kinds.count("response.output_text.delta") == 16


@pytest.fixture(params=[True, False], ids=["handler-cancellation", "write-detection"])
async def slow(request: pytest.FixtureRequest) -> AsyncIterator[Simulator]:
    options = SimulatorOptions(tokens_per_second=50, first_token_ms=0)
    runner, url = await start(options, cancel=request.param)
    yield Simulator(url, options)
    await runner.cleanup()


async def test_client_leaving_mid_stream_is_counted(
    slow: Simulator, http: aiohttp.ClientSession
) -> None:
    response = await http.post(
        f"{slow.url}/v1/chat/completions", json={**CHAT, "max_tokens": 500, "stream": True}
    )
    events = await read_events(response, 3)
    assert events[0].startswith(b"data: {")
    response.close()

    async def cancelled() -> bool:
        stats = await slow.stats(http)
        return stats["streams_cancelled"] == 1 and stats["in_flight"] == 0

    await eventually(cancelled)
    stats = await slow.stats(http)
    assert stats["streams_started"] == 1
    assert stats["streams_completed"] == 0

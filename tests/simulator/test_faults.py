"""Fault injection on POST /v1/*."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import openai
import pytest

from bastion.simulator import SimulatorOptions
from bastion.simulator.faults import INTERNAL_DETAIL

from .harness import Simulator, eventually, start

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}


async def set_options(simulator: Simulator, http: aiohttp.ClientSession, **changes: object) -> None:
    async with http.post(f"{simulator.url}/_simulator/control", json=changes) as response:
        assert response.status == 200, await response.text()


async def test_5xx_carries_the_internal_detail(
    client: openai.AsyncOpenAI, simulator: Simulator, http: aiohttp.ClientSession
) -> None:
    await set_options(simulator, http, fault="5xx")
    with pytest.raises(openai.InternalServerError) as caught:
        await client.chat.completions.create(**CHAT)
    assert caught.value.status_code == 500
    assert INTERNAL_DETAIL in caught.value.response.text
    assert caught.value.response.headers["x-bastion-simulator"] == "1"
    # GETs are never faulted
    assert len([model async for model in client.models.list()]) > 0


async def test_reset_drops_the_connection(
    client: openai.AsyncOpenAI, simulator: Simulator, http: aiohttp.ClientSession
) -> None:
    await set_options(simulator, http, fault="reset")
    with pytest.raises(openai.APIConnectionError):
        await client.embeddings.create(model="m", input="x")
    stats = await simulator.stats(http)
    assert stats["requests_total"] == 1
    await eventually(lambda: _in_flight_is(simulator, http, 0))
    # the request was read before the connection dropped, so the journal has it whole
    assert (await simulator.journal(http))[-1]["body"]["input"] == "x"


async def test_wrong_content_type(simulator: Simulator, http: aiohttp.ClientSession) -> None:
    simulator.options.fault = "wrong_content_type"  # the live options object works too
    async with http.post(f"{simulator.url}/v1/chat/completions", json=CHAT) as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        assert "<html>" in await response.text()


async def test_slow_first_byte_still_answers(
    client: openai.AsyncOpenAI, simulator: Simulator, http: aiohttp.ClientSession
) -> None:
    await set_options(simulator, http, fault="slow_first_byte", slow_first_byte_ms=20)
    completion = await client.chat.completions.create(**CHAT)
    assert completion.choices[0].message.content


async def test_slow_first_byte_trips_a_short_client_timeout(
    client: openai.AsyncOpenAI, simulator: Simulator, http: aiohttp.ClientSession
) -> None:
    await set_options(simulator, http, fault="slow_first_byte", slow_first_byte_ms=30_000)
    with pytest.raises(openai.APITimeoutError):
        await client.with_options(timeout=0.2).chat.completions.create(**CHAT)
    await eventually(lambda: _in_flight_is(simulator, http, 0))


async def test_fault_rate_zero_means_no_fault(
    client: openai.AsyncOpenAI, simulator: Simulator, http: aiohttp.ClientSession
) -> None:
    await set_options(simulator, http, fault="5xx", fault_rate=0.0)
    completion = await client.chat.completions.create(**CHAT)
    assert completion.choices


async def test_fault_rate_half_mixes_outcomes(
    simulator: Simulator, http: aiohttp.ClientSession
) -> None:
    await set_options(simulator, http, fault="5xx", fault_rate=0.5)
    statuses = set()
    for _ in range(60):
        async with http.post(
            f"{simulator.url}/v1/embeddings", json={"model": "m", "input": "x"}
        ) as r:
            statuses.add(r.status)
    assert statuses == {200, 500}


async def _in_flight_is(simulator: Simulator, http: aiohttp.ClientSession, value: int) -> bool:
    return (await simulator.stats(http))["in_flight"] == value


async def _cancelled(simulator: Simulator, http: aiohttp.ClientSession) -> bool:
    return (await simulator.stats(http))["streams_cancelled"] == 1


@pytest.fixture(params=[True, False], ids=["handler-cancellation", "write-detection"])
async def stalling(request: pytest.FixtureRequest) -> AsyncIterator[Simulator]:
    """A simulator with the stall fault, with and without aiohttp's handler cancellation."""
    options = SimulatorOptions(tokens_per_second=0, first_token_ms=0, fault="stall")
    runner, url = await start(options, cancel=request.param)
    yield Simulator(url, options)
    await runner.cleanup()


async def read_events(response: aiohttp.ClientResponse, count: int) -> list[bytes]:
    events: list[bytes] = []
    buffer = b""
    while len(events) < count:
        buffer += await response.content.readany()
        *complete, buffer = buffer.split(b"\n\n")
        events.extend(complete)
    return events


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions", "/v1/responses"])
async def test_stall_streams_some_chunks_then_hangs(
    stalling: Simulator, http: aiohttp.ClientSession, path: str
) -> None:
    body = {
        "model": "m",
        "max_tokens": 50,
        "stream": True,
        "messages": CHAT["messages"],
        "prompt": "p",
        "input": "i",
    }
    response = await http.post(f"{stalling.url}{path}", json=body)
    assert response.status == 200
    events = await read_events(response, 3)
    assert len(events) == 3
    # Nothing more comes: the next read would hang, so give it a bounded look only.
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(response.content.readany(), 0.1)
    response.close()
    await eventually(lambda: _cancelled(stalling, http))
    stats = await stalling.stats(http)
    assert stats["streams_started"] == 1
    assert stats["streams_completed"] == 0
    await eventually(lambda: _in_flight_is(stalling, http, 0))


async def test_stall_zero_chunks_sends_headers_only(
    stalling: Simulator, http: aiohttp.ClientSession
) -> None:
    stalling.options.stall_after_chunks = 0
    response = await http.post(f"{stalling.url}/v1/chat/completions", json={**CHAT, "stream": True})
    assert response.status == 200
    assert response.content_type == "text/event-stream"
    response.close()
    await eventually(lambda: _cancelled(stalling, http))


async def test_stall_on_a_plain_request_never_answers(
    stalling: Simulator, http: aiohttp.ClientSession
) -> None:
    with pytest.raises(asyncio.TimeoutError):
        async with http.post(
            f"{stalling.url}/v1/embeddings",
            json={"model": "m", "input": "x"},
            timeout=aiohttp.ClientTimeout(total=0.2),
        ):
            pass
    await eventually(lambda: _in_flight_is(stalling, http, 0))
    assert (await stalling.stats(http))["streams_started"] == 0


async def test_reset_sends_no_response_bytes(
    simulator: Simulator, http: aiohttp.ClientSession
) -> None:
    await set_options(simulator, http, fault="reset")
    host, port = simulator.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    body = b'{"model": "m", "input": "x"}'
    writer.write(
        b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )
    await writer.drain()
    try:
        received = await reader.read()
    except ConnectionResetError:
        received = b""  # the RST itself: what the fault aims for
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    assert received == b""

"""The /_simulator/* control surface: options, reset, journal, counters, key, labels."""

from __future__ import annotations

import aiohttp
import openai
import pytest

from bastion.simulator import SimulatorOptions, create_app
from bastion.simulator.control import JOURNAL_SIZE

from .harness import Simulator
from .test_transcriptions import wav


async def test_get_and_set_options(simulator: Simulator, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{simulator.url}/_simulator/control") as response:
        current = await response.json()
    assert current == simulator.options.to_dict()
    assert current["fault"] is None
    changes = {"fault": "stall", "fault_rate": 0.25, "stall_after_chunks": 5, "api_key": "k"}
    async with http.post(f"{simulator.url}/_simulator/control", json=changes) as response:
        assert response.status == 200
        assert (await response.json())["stall_after_chunks"] == 5
    # the caller's options object is the live one
    assert simulator.options.fault == "stall"
    assert simulator.options.fault_rate == 0.25
    assert simulator.options.api_key == "k"


@pytest.mark.parametrize(
    "changes",
    [
        {"unknown": 1},
        {"fault": "boom"},
        {"fault_rate": 2},
        {"fault_rate": "1"},
        {"tokens_per_second": -1},
        {"default_max_tokens": 0},
        {"stall_after_chunks": 1.5},
        {"api_key": ""},
        {"first_token_ms": True},
        {"fault": "5xx", "fault_rate": 7},  # one bad value: nothing changes
        [],
    ],
)
async def test_bad_options_change_nothing(
    simulator: Simulator, http: aiohttp.ClientSession, changes: object
) -> None:
    before = simulator.options.to_dict()
    async with http.post(f"{simulator.url}/_simulator/control", json=changes) as response:
        assert response.status == 400
        assert "error" in await response.json()
    assert simulator.options.to_dict() == before


async def test_control_needs_a_json_body(simulator: Simulator, http: aiohttp.ClientSession) -> None:
    async with http.post(f"{simulator.url}/_simulator/control", data=b"nope") as response:
        assert response.status == 400


def test_bad_start_options_are_refused() -> None:
    with pytest.raises(ValueError, match="fault"):
        create_app(SimulatorOptions(fault="explode"))


async def test_reset_restores_start_options_and_clears_history(
    client: openai.AsyncOpenAI, simulator: Simulator, http: aiohttp.ClientSession
) -> None:
    await client.embeddings.create(model="m", input="x")
    simulator.options.fault = "5xx"
    simulator.options.default_max_tokens = 2
    async with http.post(f"{simulator.url}/_simulator/reset") as response:
        assert response.status == 200
    assert simulator.options == SimulatorOptions(tokens_per_second=0, first_token_ms=0)
    assert await simulator.journal(http) == []
    stats = await simulator.stats(http)
    assert stats["requests_total"] == 0


async def test_journal_records_requests_as_received(
    client: openai.AsyncOpenAI, simulator: Simulator, http: aiohttp.ClientSession
) -> None:
    await client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=2, user="u-1"
    )
    await client.models.list()
    entries = await simulator.journal(http)
    assert [(entry["method"], entry["path"]) for entry in entries] == [
        ("POST", "/v1/chat/completions"),
        ("GET", "/v1/models"),
    ]
    first = entries[0]
    assert first["headers"]["Authorization"] == "Bearer x"
    assert first["body"] == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 2,
        "user": "u-1",
    }
    assert entries[1]["body"] is None
    # control routes are not journaled
    assert len(await simulator.journal(http)) == 2


async def test_journal_keeps_the_last_200(
    simulator: Simulator, http: aiohttp.ClientSession
) -> None:
    for index in range(JOURNAL_SIZE + 5):
        async with http.get(f"{simulator.url}/v1/models/m{index}"):
            pass
    entries = await simulator.journal(http)
    assert len(entries) == JOURNAL_SIZE
    assert entries[0]["path"] == "/v1/models/m5"
    assert entries[-1]["path"] == f"/v1/models/m{JOURNAL_SIZE + 4}"


async def test_journal_of_a_multipart_upload_has_no_file_bytes(
    client: openai.AsyncOpenAI, simulator: Simulator, http: aiohttp.ClientSession
) -> None:
    audio = wav(0.25)
    await client.audio.transcriptions.create(
        model="whisper-large-v3", file=("clip.wav", audio, "audio/wav"), language="it"
    )
    body = (await simulator.journal(http))[-1]["body"]
    assert body["fields"] == {"model": "whisper-large-v3", "language": "it"}
    assert body["file"] == {"filename": "clip.wav", "size": len(audio)}


async def test_bad_json_is_journaled_without_a_body(
    simulator: Simulator, http: aiohttp.ClientSession
) -> None:
    async with http.post(f"{simulator.url}/v1/embeddings", data=b"[") as response:
        assert response.status == 400
    assert (await simulator.journal(http))[-1]["body"] is None


async def test_stats_count_requests_and_streams(
    client: openai.AsyncOpenAI, simulator: Simulator, http: aiohttp.ClientSession
) -> None:
    stream = await client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=3, stream=True
    )
    _ = [chunk async for chunk in stream]
    await client.models.list()
    stats = await simulator.stats(http)
    assert stats == {
        "requests_total": 2,
        "streams_started": 1,
        "streams_completed": 1,
        "streams_cancelled": 0,
        "in_flight": 0,
    }


async def test_api_key(simulator: Simulator, http: aiohttp.ClientSession) -> None:
    simulator.options.api_key = "upstream-secret"
    wrong = openai.AsyncOpenAI(base_url=f"{simulator.url}/v1", api_key="x", max_retries=0)
    right = openai.AsyncOpenAI(
        base_url=f"{simulator.url}/v1", api_key="upstream-secret", max_retries=0
    )
    try:
        with pytest.raises(openai.AuthenticationError) as caught:
            await wrong.models.list()
        assert caught.value.status_code == 401
        models = await right.models.list()
        assert models.data
    finally:
        await wrong.close()
        await right.close()
    async with http.get(f"{simulator.url}/v1/models") as response:
        assert response.status == 401  # no header at all
    headers = [entry["headers"].get("Authorization") for entry in await simulator.journal(http)]
    assert headers == ["Bearer x", "Bearer upstream-secret", None]


async def test_unknown_path_and_label(simulator: Simulator, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{simulator.url}/v1/nothing") as response:
        assert response.status == 404
        assert response.headers["X-Bastion-Simulator"] == "1"
        assert (await response.json())["error"]["code"] == "not_found"
    async with http.get(f"{simulator.url}/_simulator/stats") as response:
        assert response.headers["X-Bastion-Simulator"] == "1"

"""POST /v1/responses (stateless), streamed and not."""

from __future__ import annotations

import aiohttp
import openai
import orjson
import pytest

from bastion.simulator.text import MARKER

from .harness import Simulator
from .raw_sse import post_stream
from .schemas import validate

EVENT_SCHEMAS = {
    "response.created": "ResponseCreatedEvent",
    "response.in_progress": "ResponseInProgressEvent",
    "response.output_item.added": "ResponseOutputItemAddedEvent",
    "response.content_part.added": "ResponseContentPartAddedEvent",
    "response.output_text.delta": "ResponseTextDeltaEvent",
    "response.output_text.done": "ResponseTextDoneEvent",
    "response.content_part.done": "ResponseContentPartDoneEvent",
    "response.output_item.done": "ResponseOutputItemDoneEvent",
    "response.completed": "ResponseCompletedEvent",
    "response.incomplete": "ResponseIncompleteEvent",
}


async def test_completed_response(client: openai.AsyncOpenAI) -> None:
    raw = await client.responses.with_raw_response.create(
        model="gpt-oss-120b", input="Tell me a story", max_output_tokens=2048
    )
    body = orjson.loads(raw.content)
    validate(body, "Response")
    response = raw.parse()
    assert response.object == "response"
    assert response.status == "completed"
    assert response.model == "gpt-oss-120b"
    assert response.metadata == {"simulated": "true"}
    assert response.output_text.startswith(MARKER)
    assert response.usage is not None
    assert response.usage.input_tokens == 4 + 3  # 15 characters, one message
    assert response.usage.output_tokens == len(body["output"][0]["content"][0]["text"].split())
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens


async def test_max_output_tokens_makes_it_incomplete(client: openai.AsyncOpenAI) -> None:
    response = await client.responses.create(model="m", input="hi", max_output_tokens=16)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.usage is not None
    assert response.usage.output_tokens == 16


async def test_item_list_input_and_instructions(client: openai.AsyncOpenAI) -> None:
    response = await client.responses.create(
        model="m",
        instructions="Be brief.",
        input=[
            {"role": "user", "content": "Hello there"},
            {"role": "assistant", "content": [{"type": "output_text", "text": "Hi."}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Go"}]},
        ],
        max_output_tokens=16,
        metadata={"trace": "abc"},
    )
    assert response.usage is not None
    # 9 + 11 + 3 + 2 = 25 characters -> 7 tokens; 4 messages with the instructions
    assert response.usage.input_tokens == 7 + 12
    assert response.metadata == {"trace": "abc", "simulated": "true"}
    assert response.instructions == "Be brief."


async def test_stream_events(client: openai.AsyncOpenAI) -> None:
    stream = await client.responses.create(model="m", input="hi", max_output_tokens=4, stream=True)
    events = [event async for event in stream]
    kinds = [event.type for event in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 4,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.incomplete",
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))


@pytest.mark.parametrize(
    ("limit", "final"), [(3, "response.incomplete"), (None, "response.completed")]
)
async def test_raw_stream_is_schema_valid(
    simulator: Simulator, http: aiohttp.ClientSession, limit: int | None, final: str
) -> None:
    body: dict[str, object] = {"model": "m", "input": "hello", "stream": True}
    if limit is not None:
        body["max_output_tokens"] = limit
    response, events = await post_stream(http, f"{simulator.url}/v1/responses", body)
    assert response.headers["Content-Type"] == "text/event-stream"
    assert events[-1].event == final
    deltas = []
    for event in events:
        payload = event.json()
        assert payload["type"] == event.event
        validate(payload, EVENT_SCHEMAS[payload["type"]])
        if event.event == "response.output_text.delta":
            deltas.append(payload["delta"])
    last = events[-1].json()["response"]
    text = last["output"][0]["content"][0]["text"]
    assert "".join(deltas) == text
    assert last["usage"]["output_tokens"] == len(deltas)
    assert events[0].json()["response"]["status"] == "in_progress"


@pytest.mark.parametrize(
    ("field", "value"),
    [("store", True), ("previous_response_id", "resp_1"), ("background", True)],
)
async def test_storage_is_refused(
    simulator: Simulator, http: aiohttp.ClientSession, field: str, value: object
) -> None:
    body = {"model": "m", "input": "x", field: value}
    async with http.post(f"{simulator.url}/v1/responses", json=body) as response:
        assert response.status == 400
        error = await response.json()
    validate(error, "ErrorResponse")
    assert error["error"]["param"] == field


async def test_store_false_is_fine(client: openai.AsyncOpenAI) -> None:
    response = await client.responses.create(model="m", input="x", store=False)
    assert response.store is False


async def test_missing_input_is_400(simulator: Simulator, http: aiohttp.ClientSession) -> None:
    async with http.post(f"{simulator.url}/v1/responses", json={"model": "m"}) as response:
        assert response.status == 400

"""POST /v1/chat/completions through the OpenAI SDK and as raw SSE."""

from __future__ import annotations

import aiohttp
import openai
import orjson
import pytest

from bastion.simulator.text import MARKER, MIN_NATURAL_LENGTH

from .harness import Simulator
from .raw_sse import post_stream
from .schemas import validate

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Say something about gateways."},
]


async def test_completion_is_valid_and_labelled(
    client: openai.AsyncOpenAI, simulator: Simulator, http: aiohttp.ClientSession
) -> None:
    raw = await client.chat.completions.with_raw_response.create(
        model="Qwen3-32B", messages=MESSAGES, max_tokens=5
    )
    body = orjson.loads(raw.content)
    validate(body, "CreateChatCompletionResponse")
    assert raw.headers["x-bastion-simulator"] == "1"
    completion = raw.parse()
    assert completion.model == "Qwen3-32B"
    assert completion.system_fingerprint == "bastion-simulator"
    content = completion.choices[0].message.content
    assert content is not None
    assert content.startswith(MARKER + " ")
    assert completion.choices[0].finish_reason == "length"
    usage = completion.usage
    assert usage is not None
    assert usage.completion_tokens == 5
    assert usage.total_tokens == usage.prompt_tokens + 5
    # 14 + 29 characters -> 11 tokens, plus 3 per message
    assert usage.prompt_tokens == 11 + 6
    request_bytes = len(orjson.dumps({"model": "Qwen3-32B", "messages": MESSAGES}))
    assert usage.prompt_tokens <= request_bytes


async def test_same_prompt_same_text(client: openai.AsyncOpenAI) -> None:
    first = await client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=12)
    second = await client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=12)
    other = await client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "another prompt"}], max_tokens=12
    )
    assert first.choices[0].message.content == second.choices[0].message.content
    assert first.choices[0].message.content != other.choices[0].message.content


async def test_natural_stop_before_a_large_limit(client: openai.AsyncOpenAI) -> None:
    completion = await client.chat.completions.create(
        model="m", messages=MESSAGES, max_completion_tokens=4096
    )
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert MIN_NATURAL_LENGTH <= completion.usage.completion_tokens < 4096


async def test_ignore_eos_fills_the_limit(client: openai.AsyncOpenAI) -> None:
    completion = await client.chat.completions.create(
        model="m", messages=MESSAGES, max_tokens=600, extra_body={"ignore_eos": True}
    )
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 600


async def test_default_length_comes_from_the_options(
    client: openai.AsyncOpenAI, simulator: Simulator
) -> None:
    simulator.options.default_max_tokens = 3
    completion = await client.chat.completions.create(model="m", messages=MESSAGES)
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 3


async def test_smaller_of_two_limits_wins(client: openai.AsyncOpenAI) -> None:
    completion = await client.chat.completions.create(
        model="m", messages=MESSAGES, max_tokens=9, max_completion_tokens=4
    )
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 4


async def test_n_choices(client: openai.AsyncOpenAI) -> None:
    completion = await client.chat.completions.create(
        model="m", messages=MESSAGES, max_tokens=6, n=3
    )
    assert [choice.index for choice in completion.choices] == [0, 1, 2]
    texts = {choice.message.content for choice in completion.choices}
    assert len(texts) == 3
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 18


async def test_stream_without_usage(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="m", messages=MESSAGES, max_tokens=4, stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    contents = [chunk.choices[0].delta.content for chunk in chunks[1:]]
    assert len(contents) == 4
    assert contents[0] == MARKER
    assert [chunk.choices[0].finish_reason for chunk in chunks] == [None] * 4 + ["length"]
    assert all(chunk.usage is None for chunk in chunks)


async def test_stream_matches_the_non_streamed_text(client: openai.AsyncOpenAI) -> None:
    whole = await client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=10)
    stream = await client.chat.completions.create(
        model="m", messages=MESSAGES, max_tokens=10, stream=True
    )
    text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream])
    assert text == whole.choices[0].message.content


async def test_raw_stream_with_include_usage(
    simulator: Simulator, http: aiohttp.ClientSession
) -> None:
    response, events = await post_stream(
        http,
        f"{simulator.url}/v1/chat/completions",
        {
            "model": "m",
            "messages": MESSAGES,
            "max_tokens": 3,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/event-stream"
    assert response.headers["X-Bastion-Simulator"] == "1"
    assert events[-1].data == "[DONE]"
    chunks = [event.json() for event in events[:-1]]
    for chunk in chunks:
        validate(chunk, "CreateChatCompletionStreamResponse")
        assert chunk["system_fingerprint"] == "bastion-simulator"
        assert len({chunk["id"] for chunk in chunks}) == 1
    assert [chunk["usage"] for chunk in chunks[:-1]] == [None] * 4  # present and null
    final = chunks[-1]
    assert final["choices"] == []
    assert final["usage"]["completion_tokens"] == 3
    assert final["usage"]["total_tokens"] == final["usage"]["prompt_tokens"] + 3


async def test_raw_stream_omits_usage_unless_asked(
    simulator: Simulator, http: aiohttp.ClientSession
) -> None:
    _, events = await post_stream(
        http,
        f"{simulator.url}/v1/chat/completions",
        {"model": "m", "messages": MESSAGES, "max_tokens": 3, "stream": True},
    )
    chunks = [event.json() for event in events[:-1]]
    assert len(chunks) == 4
    assert all("usage" not in chunk for chunk in chunks)


async def test_continuous_usage_stats(simulator: Simulator, http: aiohttp.ClientSession) -> None:
    _, events = await post_stream(
        http,
        f"{simulator.url}/v1/chat/completions",
        {
            "model": "m",
            "messages": MESSAGES,
            "max_tokens": 3,
            "stream": True,
            "stream_options": {"include_usage": True, "continuous_usage_stats": True},
        },
    )
    chunks = [event.json() for event in events[:-1]]
    assert [chunk["usage"]["completion_tokens"] for chunk in chunks] == [0, 1, 2, 3, 3]
    assert chunks[-1]["choices"] == []
    prompt = chunks[0]["usage"]["prompt_tokens"]
    assert all(
        chunk["usage"]["total_tokens"] == prompt + chunk["usage"]["completion_tokens"]
        for chunk in chunks
    )


async def test_continuous_usage_needs_include_usage_as_in_vllm(
    simulator: Simulator, http: aiohttp.ClientSession
) -> None:
    _, events = await post_stream(
        http,
        f"{simulator.url}/v1/chat/completions",
        {
            "model": "m",
            "messages": MESSAGES,
            "max_tokens": 2,
            "stream": True,
            "stream_options": {"continuous_usage_stats": True},
        },
    )
    assert all("usage" not in event.json() for event in events[:-1])


async def test_stream_with_n_interleaves_choices(
    simulator: Simulator, http: aiohttp.ClientSession
) -> None:
    _, events = await post_stream(
        http,
        f"{simulator.url}/v1/chat/completions",
        {"model": "m", "messages": MESSAGES, "max_tokens": 2, "n": 2, "stream": True},
    )
    chunks = [event.json()["choices"][0] for event in events[:-1]]
    assert [chunk["index"] for chunk in chunks] == [0, 1, 0, 1, 0, 1]
    assert [chunk["finish_reason"] for chunk in chunks] == [None] * 4 + ["length"] * 2


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": MESSAGES}, "model"),
        ({"model": "m"}, "messages"),
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": MESSAGES, "max_tokens": 0}, "max_tokens"),
        ({"model": "m", "messages": MESSAGES, "n": 17}, "n"),
        ({"model": "m", "messages": MESSAGES, "stream": "yes"}, "stream"),
    ],
)
async def test_bad_requests_get_the_openai_envelope(
    simulator: Simulator, http: aiohttp.ClientSession, body: dict[str, object], param: str
) -> None:
    async with http.post(f"{simulator.url}/v1/chat/completions", json=body) as response:
        assert response.status == 400
        error = await response.json()
    validate(error, "ErrorResponse")
    assert error["error"]["type"] == "invalid_request_error"
    assert error["error"]["param"] == param


async def test_invalid_json_is_400(simulator: Simulator, http: aiohttp.ClientSession) -> None:
    async with http.post(
        f"{simulator.url}/v1/chat/completions",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
    ) as response:
        assert response.status == 400
        error = await response.json()
    assert error["error"]["code"] == "invalid_request"

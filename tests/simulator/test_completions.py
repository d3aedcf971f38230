"""POST /v1/completions (legacy text_completion)."""

from __future__ import annotations

import aiohttp
import openai
import orjson

from bastion.simulator.text import MARKER

from .harness import Simulator
from .raw_sse import post_stream
from .schemas import validate


async def test_string_prompt(client: openai.AsyncOpenAI) -> None:
    raw = await client.completions.with_raw_response.create(
        model="Llama-3.1-8B-Instruct", prompt="Once upon a time", max_tokens=7
    )
    validate(orjson.loads(raw.content), "CreateCompletionResponse")
    completion = raw.parse()
    assert completion.object == "text_completion"
    assert completion.model == "Llama-3.1-8B-Instruct"
    assert completion.system_fingerprint == "bastion-simulator"
    assert completion.choices[0].text.startswith(MARKER)
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 4  # 16 characters
    assert completion.usage.completion_tokens == 7


async def test_list_of_prompts_gives_one_choice_each(client: openai.AsyncOpenAI) -> None:
    completion = await client.completions.create(
        model="m", prompt=["first prompt", "second prompt"], max_tokens=3
    )
    assert [choice.index for choice in completion.choices] == [0, 1]
    assert completion.choices[0].text != completion.choices[1].text
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 3 + 4
    assert completion.usage.completion_tokens == 6


async def test_token_id_prompts(client: openai.AsyncOpenAI) -> None:
    single = await client.completions.create(model="m", prompt=[1, 2, 3, 4, 5], max_tokens=2)
    assert single.usage is not None
    assert single.usage.prompt_tokens == 5
    many = await client.completions.create(model="m", prompt=[[1, 2], [3, 4, 5]], max_tokens=2)
    assert len(many.choices) == 2
    assert many.usage is not None
    assert many.usage.prompt_tokens == 5


async def test_stream(client: openai.AsyncOpenAI) -> None:
    whole = await client.completions.create(model="m", prompt="p", max_tokens=5)
    stream = await client.completions.create(
        model="m", prompt="p", max_tokens=5, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert "".join(chunk.choices[0].text for chunk in chunks[:-1]) == whole.choices[0].text
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 5


async def test_raw_stream_is_schema_valid(
    simulator: Simulator, http: aiohttp.ClientSession
) -> None:
    _, events = await post_stream(
        http,
        f"{simulator.url}/v1/completions",
        {
            "model": "m",
            "prompt": "p",
            "max_tokens": 2,
            "stream": True,
            "stream_options": {"include_usage": True, "continuous_usage_stats": True},
        },
    )
    assert events[-1].data == "[DONE]"
    chunks = [event.json() for event in events[:-1]]
    # The schema types finish_reason as a plain string, yet OpenAI (and vLLM) stream null
    # until the last token; only the finishing chunk can match the schema to the letter.
    validate(chunks[-2], "CreateCompletionResponse")
    assert [chunk["usage"]["completion_tokens"] for chunk in chunks] == [1, 2, 2]
    assert [chunk["choices"][0]["finish_reason"] for chunk in chunks[:-1]] == [None, "length"]


async def test_missing_prompt_is_400(simulator: Simulator, http: aiohttp.ClientSession) -> None:
    async with http.post(f"{simulator.url}/v1/completions", json={"model": "m"}) as response:
        assert response.status == 400
        assert (await response.json())["error"]["param"] == "prompt"

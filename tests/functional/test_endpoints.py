"""Every /v1 endpoint through the real OpenAI SDK, each answer checked against OpenAI's schema."""

from __future__ import annotations

import base64
from typing import Any

import openai
import pytest

from tests.support.conformance import call, journal_for, wav_bytes
from tests.support.harness import Stack
from tests.support.openapi import validate

CHAT = [{"role": "user", "content": "Hello!"}]


@pytest.fixture
def config() -> dict[str, Any]:
    return {
        "models": {
            # served under another id upstream: the client still sees its own id
            "gpt-oss-20b": {
                "deployments": [{"upstream": "simulator", "model": "openai/gpt-oss-20b"}]
            },
            # an operator alias for a chat model
            "Qwen3-32B": {"aliases": ["qwen"]},
        },
        "tiers": {"free": {"models": ["gpt-oss-20b", "bge-m3"]}},
    }


async def test_chat_completion(stack: Stack) -> None:
    _, key = await stack.account_and_key()
    reply = await stack.client(key).chat.completions.create(
        model="gpt-oss-120b", messages=CHAT, max_tokens=5
    )
    assert reply.model == "gpt-oss-120b"
    assert reply.object == "chat.completion"
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 5
    assert reply.choices[0].message.content
    validate(reply.model_dump(exclude_unset=True), "CreateChatCompletionResponse")


async def test_completion(stack: Stack) -> None:
    _, key = await stack.account_and_key()
    reply = await stack.client(key).completions.create(
        model="Mistral-7B-Instruct-v0.3", prompt="Once upon a time", max_tokens=4
    )
    assert reply.model == "Mistral-7B-Instruct-v0.3"
    assert reply.choices[0].text
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 4
    validate(reply.model_dump(exclude_unset=True), "CreateCompletionResponse")


async def test_response(stack: Stack) -> None:
    _, key = await stack.account_and_key()
    reply = await stack.client(key).responses.create(
        model="Llama-3.1-8B-Instruct", input="Say hi", max_output_tokens=16
    )
    assert reply.model == "Llama-3.1-8B-Instruct"
    assert reply.output_text
    assert reply.usage is not None
    assert reply.usage.output_tokens > 0
    validate(reply.model_dump(exclude_unset=True), "Response")


async def test_embeddings_keep_input_order(stack: Stack) -> None:
    _, key = await stack.account_and_key()
    inputs = ["first", "the second input", "3", "a fourth, longer input than the others"]
    reply = await stack.client(key).embeddings.create(
        model="bge-m3", input=inputs, encoding_format="float"
    )
    assert [item.index for item in reply.data] == list(range(len(inputs)))
    assert all(len(item.embedding) == 1024 for item in reply.data)
    assert reply.usage.prompt_tokens > 0
    assert reply.usage.total_tokens >= reply.usage.prompt_tokens
    validate(reply.model_dump(exclude_unset=True), "CreateEmbeddingResponse")
    # one input string works too
    single = await stack.client(key).embeddings.create(model="Qwen3-Embedding-8B", input="x")
    assert [item.index for item in single.data] == [0]


@pytest.mark.parametrize("response_format", ["b64_json", "url"])
async def test_images(stack: Stack, response_format: str) -> None:
    _, key = await stack.account_and_key()
    reply = await stack.client(key).images.generate(
        model="stable-diffusion-xl-base-v10",
        prompt="a lighthouse at dusk",
        n=2,
        size="512x512",
        response_format=response_format,  # type: ignore[arg-type]
    )
    assert len(reply.data) == 2
    for item in reply.data:
        present = {k for k in ("url", "b64_json") if getattr(item, k) is not None}
        assert present == {response_format}
        if response_format == "b64_json":
            assert base64.b64decode(item.b64_json or "").startswith(b"\x89PNG")
    assert isinstance(reply.created, int)
    assert reply.created > 1_600_000_000
    validate(reply.model_dump(exclude_unset=True), "ImagesResponse")


async def test_images_through_an_alias(stack: Stack) -> None:
    _, key = await stack.account_and_key()
    reply = await stack.client(key).images.generate(model="sd-xl", prompt="a cat", size="512x512")
    assert len(reply.data) == 1
    [sent] = await journal_for(stack, "/v1/images/generations")
    assert sent["body"]["model"] == "stable-diffusion-xl-base-v10"


@pytest.mark.parametrize(
    ("response_format", "schema"),
    [
        ("json", "CreateTranscriptionResponseJson"),
        ("verbose_json", "CreateTranscriptionResponseVerboseJson"),
        ("text", None),
    ],
)
async def test_transcriptions(stack: Stack, response_format: str, schema: str | None) -> None:
    _, key = await stack.account_and_key()
    audio = wav_bytes(seconds=1.5)
    reply: Any = await stack.client(key).audio.transcriptions.create(
        model="whisper-large-v3",
        file=("hello.wav", audio, "audio/wav"),
        response_format=response_format,  # type: ignore[arg-type]
        language="en",
    )
    if schema is None:
        assert isinstance(reply, str)
        assert "[simulated]" in reply
    else:
        data = reply.model_dump(exclude_unset=True)
        assert data["text"]
        assert data["language"] == "en"
        validate(data, schema)
    [sent] = await journal_for(stack, "/v1/audio/transcriptions")
    assert sent["body"]["file"]["size"] == len(audio)
    assert sent["body"]["fields"]["model"] == "whisper-large-v3"
    assert sent["body"]["fields"]["response_format"] == response_format


async def test_models_list(stack: Stack) -> None:
    _, key = await stack.account_and_key()
    page = await stack.client(key).models.list()
    ids = [m.id for m in page.data]
    assert "gpt-oss-120b" in ids
    assert "whisper-large-v3" in ids
    assert "tts-en-us" in ids
    for model in page.data:
        assert model.object == "model"
        assert isinstance(model.created, int)
        assert model.owned_by
    reply = await call(stack, "GET", "/v1/models", key=key)
    validate(reply.json(), "ListModelsResponse")
    assert set(reply.json()) == {"object", "data"}


async def test_models_list_is_scoped_to_the_tier(stack: Stack) -> None:
    _, key = await stack.account_and_key(tier="free")
    page = await stack.client(key).models.list()
    assert sorted(m.id for m in page.data) == ["bge-m3", "gpt-oss-20b"]


async def test_models_list_is_free(stack: Stack) -> None:
    account_id, key = await stack.account_and_key()
    for _ in range(3):
        await stack.client(key).models.list()
    await stack.settled()
    assert await stack.runtime.db.ledger.entries(account_id, kinds=("charge",)) == []


async def test_model_field_is_the_id_the_client_asked_for(stack: Stack) -> None:
    _, key = await stack.account_and_key()
    client = stack.client(key)
    chat = await client.chat.completions.create(model="gpt-oss-20b", messages=CHAT, max_tokens=2)
    assert chat.model == "gpt-oss-20b"
    completion = await client.completions.create(model="gpt-oss-20b", prompt="hi", max_tokens=2)
    assert completion.model == "gpt-oss-20b"
    response = await client.responses.create(model="gpt-oss-20b", input="hi", max_output_tokens=2)
    assert response.model == "gpt-oss-20b"
    sent = [e["body"]["model"] for e in await stack.sim_journal()]
    assert sent == ["openai/gpt-oss-20b"] * 3


async def test_model_field_through_an_alias(stack: Stack) -> None:
    _, key = await stack.account_and_key()
    reply = await stack.client(key).chat.completions.create(
        model="qwen", messages=CHAT, max_tokens=2
    )
    assert reply.model == "qwen"
    [sent] = await journal_for(stack, "/v1/chat/completions")
    assert sent["body"]["model"] == "Qwen3-32B"


async def test_successful_requests_are_charged(stack: Stack) -> None:
    account_id, key = await stack.account_and_key()
    reply = await stack.client(key).chat.completions.create(
        model="gpt-oss-120b", messages=CHAT, max_tokens=3
    )
    await stack.settled()
    [charge] = await stack.runtime.db.ledger.entries(account_id, kinds=("charge",))
    assert charge["amount"] != 0
    assert reply.usage is not None
    assert charge["usage"]["output_tokens"] == reply.usage.completion_tokens


async def test_sdk_errors_are_typed(stack: Stack) -> None:
    _, key = await stack.account_and_key()
    with pytest.raises(openai.BadRequestError) as caught:
        await stack.client(key).chat.completions.create(model="gpt-4o", messages=CHAT)
    assert caught.value.code == "model_not_found"
    assert caught.value.type == "invalid_request_error"

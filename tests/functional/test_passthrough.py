"""Bodies reach the upstream unchanged but for the model id (and usage on streams); the
client's credentials and hop-by-hop headers never do; answers come back field for field."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import web

from tests.support.conformance import call, journal_for, sse_json
from tests.support.harness import Stack

OPERATOR_KEY = "sk-operator-upstream-credential"
SEEN: web.AppKey[list[dict[str, Any]]] = web.AppKey("seen", list)
MSG = [{"role": "user", "content": 'héllo \u2603 "quoted" <think>'}]

# Fields Bastion does not know: each must arrive exactly as sent.
UNKNOWN_CHAT_FIELDS: dict[str, Any] = {
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather by city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ],
    "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    "response_format": {"type": "json_object"},
    "seed": 1234,
    "stop": ["\n\n", "END"],
    "user": "customer-42",
    "temperature": 0.7,
    "top_p": 0.95,
    "logit_bias": {"50256": -100},
    "x_custom": {"nested": [1, 2.5, None, True, "z"]},
    "chat_template_kwargs": {"enable_thinking": False},
}


# -- a fake upstream that answers with non-standard fields -------------------------------------


def _reasoner_answer(model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "<think>hmm</think>42",
                    "reasoning_content": "Let me think: 6 × 7.",
                    "reasoning": "six times seven",
                },
                "finish_reason": "stop",
                "stop_reason": None,
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
        "prompt_logprobs": None,
        "kv_transfer_params": {"vendor": "specific"},
    }


def _reasoner_chunks(model: str) -> list[dict[str, Any]]:
    head = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": model}
    return [
        {**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
        {**head, "choices": [{"index": 0, "delta": {"reasoning_content": "thinking…"}}]},
        {**head, "choices": [{"index": 0, "delta": {"content": "<think>x</think>"}}]},
        {
            **head,
            "choices": [{"index": 0, "delta": {"content": "42"}, "finish_reason": "stop"}],
            "vendor_extra": {"a": 1},
        },
        {**head, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3}},
    ]


async def _fake_chat(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    request.app[SEEN].append({"headers": dict(request.headers), "body": body})
    model = body["model"]
    if not body.get("stream"):
        return web.json_response(_reasoner_answer(model))
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for chunk in _reasoner_chunks(model):
        await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


@pytest.fixture
async def fake_upstream() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    app = web.Application()
    seen: list[dict[str, Any]] = []
    app[SEEN] = seen
    app.router.add_post("/v1/chat/completions", _fake_chat)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen
    await runner.cleanup()


@pytest.fixture
def config(fake_upstream: tuple[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return {
        "upstreams": {
            "simulator": {"api_key": OPERATOR_KEY, "headers": {"X-Operator-Tenant": "bastion"}},
            "fake": {"base_url": fake_upstream[0]},
        },
        "models": {
            "reasoner": {
                "category": "chat",
                "endpoints": ["chat"],
                "price": {"input_per_mtok": "1", "output_per_mtok": "1"},
                "deployments": [{"upstream": "fake", "model": "vendor/reasoner-v2"}],
            }
        },
    }


@pytest.fixture
async def guarded(stack: Stack) -> Stack:
    """The simulator requires the operator's credential, as a real upstream would."""
    await stack.sim_control(api_key=OPERATOR_KEY)
    return stack


# -- request bodies ---------------------------------------------------------------------------


async def test_unknown_chat_fields_pass_through(guarded: Stack) -> None:
    stack = guarded
    _, key = await stack.account_and_key()
    body = {"model": "gpt-oss-120b", "messages": MSG, "max_tokens": 3, **UNKNOWN_CHAT_FIELDS}
    reply = await call(stack, "POST", "/v1/chat/completions", key=key, json=body)
    assert reply.status == 200, reply.body
    [sent] = await journal_for(stack, "/v1/chat/completions")
    assert sent["body"] == body


async def test_unknown_fields_pass_through_the_sdk(guarded: Stack) -> None:
    stack = guarded
    _, key = await stack.account_and_key()
    await stack.client(key).chat.completions.create(
        model="gpt-oss-120b",
        messages=MSG,  # type: ignore[arg-type]
        max_tokens=2,
        seed=7,
        user="u-1",
        response_format={"type": "json_object"},
        extra_body={"x_custom": {"a": [1]}, "repetition_penalty": 1.1},
    )
    [sent] = await journal_for(stack, "/v1/chat/completions")
    assert sent["body"]["seed"] == 7
    assert sent["body"]["user"] == "u-1"
    assert sent["body"]["response_format"] == {"type": "json_object"}
    assert sent["body"]["x_custom"] == {"a": [1]}
    assert sent["body"]["repetition_penalty"] == 1.1


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/v1/completions",
            {
                "model": "gpt-oss-120b",
                "prompt": ["a", "b"],
                "max_tokens": 2,
                "echo": False,
                "suffix": None,
                "best_of": 1,
                "x_custom": 1,
            },
        ),
        (
            "/v1/responses",
            {
                "model": "gpt-oss-120b",
                "input": [{"role": "user", "content": "hi"}],
                "instructions": "be brief",
                "max_output_tokens": 4,
                "text": {"format": {"type": "text"}},
                "metadata": {"trace": "t-1"},
                "reasoning": {"effort": "low"},
                "x_custom": "y",
            },
        ),
        (
            "/v1/embeddings",
            {
                "model": "bge-m3",
                "input": ["a", "b"],
                "encoding_format": "base64",
                "dimensions": 256,
                "user": "u",
                "x_custom": [1],
            },
        ),
        (
            "/v1/images/generations",
            {
                "model": "stable-diffusion-xl-base-v10",
                "prompt": "a cat",
                "size": "512x512",
                "quality": "hd",
                "output_format": "png",
                "style": "vivid",
                "x_custom": {"k": "v"},
            },
        ),
    ],
)
async def test_unknown_fields_on_every_endpoint(
    guarded: Stack, path: str, body: dict[str, Any]
) -> None:
    stack = guarded
    _, key = await stack.account_and_key()
    reply = await call(stack, "POST", path, key=key, json=body)
    assert reply.status == 200, reply.body
    [sent] = await journal_for(stack, path)
    assert sent["body"] == body


async def test_unchanged_body_is_forwarded_byte_for_byte(guarded: Stack) -> None:
    """When nothing needs rewriting, the client's exact bytes are sent (key order, spacing)."""
    stack = guarded
    _, key = await stack.account_and_key()
    raw = (
        b'{"x_custom" : {"b":1, "a":2},\n "model":"gpt-oss-120b",'
        b'"messages":[{"role":"user","content":"hi"}],"max_tokens":1}'
    )
    reply = await call(
        stack,
        "POST",
        "/v1/chat/completions",
        key=key,
        data=raw,
        headers={"Content-Type": "application/json"},
    )
    assert reply.status == 200
    [sent] = await journal_for(stack, "/v1/chat/completions")
    assert sent["headers"]["Content-Length"] == str(len(raw))
    assert list(sent["body"]["x_custom"]) == ["b", "a"]


async def test_stream_body_changes_only_stream_options(guarded: Stack) -> None:
    stack = guarded
    _, key = await stack.account_and_key()
    body = {
        "model": "gpt-oss-120b",
        "messages": MSG,
        "max_tokens": 2,
        "stream": True,
        **UNKNOWN_CHAT_FIELDS,
    }
    reply = await call(stack, "POST", "/v1/chat/completions", key=key, json=body)
    assert reply.status == 200
    [sent] = await journal_for(stack, "/v1/chat/completions")
    options = sent["body"].pop("stream_options")
    assert options["include_usage"] is True
    assert sent["body"] == body


# -- headers ----------------------------------------------------------------------------------

CLIENT_HEADERS = {
    "Cookie": "session=secret-cookie",
    "Connection": "keep-alive, X-Hop",
    "X-Hop": "hop-by-hop",
    "Keep-Alive": "timeout=5",
    "TE": "trailers",
    "Proxy-Authorization": "Basic cHJveHk6cHJveHk=",
    "X-Forwarded-For": "203.0.113.9",
    "X-Client-Custom": "client-only",
    "OpenAI-Organization": "org-123",
}


async def test_client_headers_never_reach_the_upstream(guarded: Stack) -> None:
    stack = guarded
    _, key = await stack.account_and_key()
    reply = await call(
        stack,
        "POST",
        "/v1/chat/completions",
        key=key,
        json={"model": "gpt-oss-120b", "messages": MSG, "max_tokens": 1},
        headers=CLIENT_HEADERS,
    )
    assert reply.status == 200, reply.body  # the simulator accepted the operator's credential
    [sent] = await journal_for(stack, "/v1/chat/completions")
    headers = {name.lower(): value for name, value in sent["headers"].items()}
    assert headers["authorization"] == f"Bearer {OPERATOR_KEY}"
    assert headers["x-operator-tenant"] == "bastion"
    everything = orjson.dumps(sent["headers"]).decode()
    assert key not in everything
    for name, value in CLIENT_HEADERS.items():
        assert name.lower() not in headers or name.lower() == "connection"
        assert value not in everything


async def test_client_authorization_never_reaches_the_upstream_on_uploads(guarded: Stack) -> None:
    from tests.support.conformance import transcription_form, wav_bytes

    stack = guarded
    _, key = await stack.account_and_key()
    form = transcription_form(wav_bytes(0.5), model="whisper-large-v3")
    reply = await call(
        stack, "POST", "/v1/audio/transcriptions", key=key, data=form, headers=CLIENT_HEADERS
    )
    assert reply.status == 200, reply.body
    [sent] = await journal_for(stack, "/v1/audio/transcriptions")
    everything = orjson.dumps(sent["headers"]).decode()
    assert key not in everything
    assert "secret-cookie" not in everything
    assert sent["headers"]["Authorization"] == f"Bearer {OPERATOR_KEY}"


async def test_response_cookies_and_upstream_headers_are_not_relayed(guarded: Stack) -> None:
    stack = guarded
    _, key = await stack.account_and_key()
    reply = await call(
        stack,
        "POST",
        "/v1/chat/completions",
        key=key,
        json={"model": "gpt-oss-120b", "messages": MSG, "max_tokens": 1},
    )
    assert "X-Bastion-Simulator" not in reply.headers
    assert "Set-Cookie" not in reply.headers


# -- answers ----------------------------------------------------------------------------------


async def test_non_standard_response_fields_pass_through(
    stack: Stack, fake_upstream: tuple[str, list[dict[str, Any]]]
) -> None:
    _, key = await stack.account_and_key()
    reply = await call(
        stack,
        "POST",
        "/v1/chat/completions",
        key=key,
        json={"model": "reasoner", "messages": MSG, "max_tokens": 5},
    )
    assert reply.status == 200, reply.body
    expected = _reasoner_answer("reasoner")
    assert reply.json() == expected
    assert fake_upstream[1][0]["body"]["model"] == "vendor/reasoner-v2"
    # and through the SDK, the extra fields stay reachable
    answer = await stack.client(key).chat.completions.create(
        model="reasoner",
        messages=MSG,  # type: ignore[arg-type]
    )
    message = answer.choices[0].message
    assert message.content == "<think>hmm</think>42"
    assert message.model_extra is not None
    assert message.model_extra["reasoning_content"] == "Let me think: 6 × 7."


async def test_non_standard_stream_fields_pass_through(stack: Stack) -> None:
    _, key = await stack.account_and_key()
    reply = await call(
        stack,
        "POST",
        "/v1/chat/completions",
        key=key,
        json={"model": "reasoner", "messages": MSG, "stream": True},
    )
    assert reply.status == 200
    events = sse_json(reply.body)
    expected = [c for c in _reasoner_chunks("reasoner") if c["choices"]]
    assert events == expected
    assert reply.body.endswith(b"data: [DONE]\n\n")


async def test_responses_stream_body_is_forwarded_unchanged(guarded: Stack) -> None:
    """Usage arrives in ``response.completed`` anyway: nothing is added to a Responses
    stream request (``stream_options`` is a chat/completions parameter)."""
    stack = guarded
    _, key = await stack.account_and_key()
    body = {"model": "gpt-oss-120b", "input": "hi", "stream": True, "max_output_tokens": 2}
    reply = await call(stack, "POST", "/v1/responses", key=key, json=body)
    assert reply.status == 200
    [sent] = await journal_for(stack, "/v1/responses")
    assert sent["body"] == body

"""The error rows of the contract: each in the exact envelope with its status, code and type,
with ``x-request-id`` always and rate-limit state on authenticated responses."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from tests.support.conformance import (
    assert_error,
    call,
    charges,
    journal_for,
    transcription_form,
    wav_bytes,
)
from tests.support.harness import Stack

JSON_CAP = 4096
MSG = [{"role": "user", "content": "hi"}]
RATE_HEADERS = (
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
)


@pytest.fixture
def config() -> dict[str, Any]:
    return {
        "listener": {"max_json_body_bytes": JSON_CAP},
        "tiers": {"free": {"models": ["gpt-oss-20b"]}},
    }


# -- 400 model_not_found ----------------------------------------------------------------------

MODEL_NOT_FOUND: list[tuple[str, dict[str, Any]]] = [
    ("/v1/responses", {"model": "Mistral-7B-Instruct-v0.3", "input": "hi"}),
    ("/v1/responses", {"model": "Qwen3Guard-Gen-8B", "input": "hi"}),
    ("/v1/chat/completions", {"model": "bge-m3", "messages": MSG}),
    ("/v1/chat/completions", {"model": "whisper-large-v3", "messages": MSG}),
    ("/v1/chat/completions", {"model": "tts-en-us", "messages": MSG}),
    ("/v1/chat/completions", {"model": "gpt-4o", "messages": MSG}),
    ("/v1/completions", {"model": "gpt-4o", "prompt": "hi"}),
    ("/v1/responses", {"model": "gpt-4o", "input": "hi"}),
    ("/v1/embeddings", {"model": "text-embedding-3-small", "input": "hi"}),
    ("/v1/embeddings", {"model": "gpt-4o", "input": "hi"}),
    ("/v1/embeddings", {"model": "gpt-oss-120b", "input": "hi"}),
    ("/v1/images/generations", {"model": "gpt-4o", "prompt": "a cat"}),
    ("/v1/images/generations", {"model": "bge-m3", "prompt": "a cat"}),
    ("/v1/chat/completions", {"model": "GPT-OSS-120B", "messages": MSG}),
]


@pytest.mark.parametrize(("path", "body"), MODEL_NOT_FOUND)
async def test_model_not_found(stack: Stack, path: str, body: dict[str, Any]) -> None:
    account_id, key = await stack.account_and_key()
    reply = await call(stack, "POST", path, key=key, json=body)
    error = assert_error(reply, 400, "model_not_found")
    assert body["model"] in error["message"]
    assert await stack.sim_journal() == []
    assert await charges(stack, account_id) == []


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-oss-120b", "bge-m3"])
async def test_model_not_found_on_transcriptions(stack: Stack, model: str) -> None:
    _, key = await stack.account_and_key()
    form = transcription_form(wav_bytes(0.2), model=model)
    reply = await call(stack, "POST", "/v1/audio/transcriptions", key=key, data=form)
    assert_error(reply, 400, "model_not_found")
    assert await stack.sim_journal() == []


async def test_model_not_enabled_for_the_tier(stack: Stack) -> None:
    _, key = await stack.account_and_key(tier="free")
    client = stack.client(key)
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(model="gpt-oss-120b", messages=MSG)  # type: ignore[arg-type]
    assert caught.value.code == "model_not_found"
    reply = await client.chat.completions.create(model="gpt-oss-20b", messages=MSG, max_tokens=1)  # type: ignore[arg-type]
    assert reply.model == "gpt-oss-20b"


async def test_model_not_found_through_the_sdk(stack: Stack) -> None:
    _, key = await stack.account_and_key()
    with pytest.raises(openai.BadRequestError) as caught:
        await stack.client(key).responses.create(model="Mistral-7B-Instruct-v0.3", input="hi")
    assert caught.value.status_code == 400
    assert caught.value.code == "model_not_found"
    assert caught.value.type == "invalid_request_error"


# -- 400 invalid_request ----------------------------------------------------------------------

INVALID_BODIES: list[tuple[str, bytes]] = [
    ("/v1/chat/completions", b"{not json"),
    ("/v1/chat/completions", b""),
    ("/v1/chat/completions", b"[1, 2]"),
    ("/v1/chat/completions", b'"a string"'),
    ("/v1/chat/completions", b"null"),
    ("/v1/completions", b"42"),
    ("/v1/embeddings", b'{"model": "bge-m3", "input": "x"'),
    ("/v1/responses", b"\xff\xfe"),
]


@pytest.mark.parametrize(("path", "raw"), INVALID_BODIES)
async def test_body_is_not_a_json_object(stack: Stack, path: str, raw: bytes) -> None:
    _, key = await stack.account_and_key()
    reply = await call(
        stack, "POST", path, key=key, data=raw, headers={"Content-Type": "application/json"}
    )
    assert_error(reply, 400, "invalid_request")
    assert await stack.sim_journal() == []


INVALID_FIELDS: list[tuple[str, dict[str, Any], str]] = [
    ("/v1/chat/completions", {"messages": MSG}, "model"),
    ("/v1/chat/completions", {"model": 5, "messages": MSG}, "model"),
    ("/v1/chat/completions", {"model": "", "messages": MSG}, "model"),
    ("/v1/chat/completions", {"model": "gpt-oss-120b"}, "messages"),
    ("/v1/chat/completions", {"model": "gpt-oss-120b", "messages": "hi"}, "messages"),
    ("/v1/chat/completions", {"model": "gpt-oss-120b", "messages": []}, "messages"),
    ("/v1/chat/completions", {"model": "gpt-oss-120b", "messages": ["hi"]}, "messages[0]"),
    ("/v1/chat/completions", {"model": "gpt-oss-120b", "messages": [{}]}, "role"),
    (
        "/v1/chat/completions",
        {"model": "gpt-oss-120b", "messages": MSG, "max_tokens": "10"},
        "max_tokens",
    ),
    (
        "/v1/chat/completions",
        {"model": "gpt-oss-120b", "messages": MSG, "max_tokens": 0},
        "max_tokens",
    ),
    (
        "/v1/chat/completions",
        {"model": "gpt-oss-120b", "messages": MSG, "max_tokens": 1.5},
        "max_tokens",
    ),
    ("/v1/chat/completions", {"model": "gpt-oss-120b", "messages": MSG, "stream": "yes"}, "stream"),
    ("/v1/chat/completions", {"model": "gpt-oss-120b", "messages": MSG, "stream": 1}, "stream"),
    ("/v1/chat/completions", {"model": "gpt-oss-120b", "messages": MSG, "n": "2"}, "n"),
    (
        "/v1/chat/completions",
        {"model": "gpt-oss-120b", "messages": MSG, "max_completion_tokens": "5"},
        "max_completion_tokens",
    ),
    (
        "/v1/chat/completions",
        {"model": "gpt-oss-120b", "messages": MSG, "stream": True, "stream_options": "usage"},
        "stream_options",
    ),
    ("/v1/completions", {"model": "gpt-oss-120b"}, "prompt"),
    ("/v1/completions", {"model": "gpt-oss-120b", "prompt": {"a": 1}}, "prompt"),
    ("/v1/completions", {"model": "gpt-oss-120b", "prompt": "x", "max_tokens": "3"}, "max_tokens"),
    ("/v1/completions", {"model": "gpt-oss-120b", "prompt": "x", "stream": "true"}, "stream"),
    ("/v1/responses", {"model": "gpt-oss-120b"}, "input"),
    ("/v1/responses", {"model": "gpt-oss-120b", "input": 7}, "input"),
    (
        "/v1/responses",
        {"model": "gpt-oss-120b", "input": "x", "max_output_tokens": "9"},
        "max_output_tokens",
    ),
    ("/v1/responses", {"model": "gpt-oss-120b", "input": "x", "stream": "yes"}, "stream"),
    ("/v1/embeddings", {"model": "bge-m3"}, "input"),
    ("/v1/embeddings", {"model": "bge-m3", "input": ""}, "input"),
    ("/v1/embeddings", {"model": "bge-m3", "input": []}, "input"),
    ("/v1/embeddings", {"model": "bge-m3", "input": [1, "a"]}, "input"),
    ("/v1/embeddings", {"model": "bge-m3", "input": {"text": "a"}}, "input"),
    ("/v1/images/generations", {"model": "sd-xl"}, "prompt"),
    ("/v1/images/generations", {"model": "sd-xl", "prompt": ""}, "prompt"),
    ("/v1/images/generations", {"model": "sd-xl", "prompt": "x", "n": "2"}, "n"),
    (
        "/v1/images/generations",
        {"model": "sd-xl", "prompt": "x", "response_format": "png"},
        "response_format",
    ),
    ("/v1/images/generations", {"model": "sd-xl", "prompt": "x", "size": 512}, "size"),
]


@pytest.mark.parametrize(("path", "body", "field"), INVALID_FIELDS)
async def test_invalid_fields(stack: Stack, path: str, body: dict[str, Any], field: str) -> None:
    account_id, key = await stack.account_and_key()
    reply = await call(stack, "POST", path, key=key, json=body)
    error = assert_error(reply, 400, "invalid_request")
    assert field in error["message"]
    assert await stack.sim_journal() == []
    assert await charges(stack, account_id) == []


async def test_invalid_request_through_the_sdk(stack: Stack) -> None:
    _, key = await stack.account_and_key()
    with pytest.raises(openai.BadRequestError) as caught:
        await stack.client(key).chat.completions.create(
            model="gpt-oss-120b",
            messages=MSG,  # type: ignore[arg-type]
            extra_body={"max_tokens": "10"},
        )
    assert caught.value.code == "invalid_request"
    assert caught.value.type == "invalid_request_error"


TRANSCRIPTION_INVALID: list[tuple[str, Any]] = [
    ("not multipart", b'{"model": "whisper-large-v3"}'),
    ("no file", {"model": "whisper-large-v3"}),
    ("no model", {"file": wav_bytes(0.2)}),
    ("empty file", {"model": "whisper-large-v3", "file": b""}),
    ("not audio", {"model": "whisper-large-v3", "file": b"this is not audio at all" * 10}),
]


@pytest.mark.parametrize(
    ("case", "form"), TRANSCRIPTION_INVALID, ids=[c for c, _ in TRANSCRIPTION_INVALID]
)
async def test_invalid_transcription_uploads(stack: Stack, case: str, form: Any) -> None:
    import aiohttp

    _, key = await stack.account_and_key()
    data: Any = form
    if isinstance(form, dict):
        data = aiohttp.FormData()
        for name, value in form.items():
            if name == "file":
                data.add_field("file", value, filename="a.wav", content_type="audio/wav")
            else:
                data.add_field(name, value)
    reply = await call(stack, "POST", "/v1/audio/transcriptions", key=key, data=data)
    assert_error(reply, 400, "invalid_request")
    assert await journal_for(stack, "/v1/audio/transcriptions") == []


# -- 404, 405 ---------------------------------------------------------------------------------

UNKNOWN_PATHS = [
    ("GET", "/nope"),
    ("GET", "/v1"),
    ("GET", "/v1/unknown"),
    ("POST", "/v1/chat"),
    ("POST", "/v1/chat/completions/extra"),
    ("GET", "/v1/models/gpt-oss-120b/x"),
    ("POST", "/v2/chat/completions"),
]


@pytest.mark.parametrize("with_key", [False, True])
async def test_unknown_path_is_404(stack: Stack, with_key: bool) -> None:
    key = (await stack.account_and_key())[1] if with_key else None
    for method, path in UNKNOWN_PATHS:
        reply = await call(stack, method, path, key=key)
        error = assert_error(reply, 404, "not_found")
        assert path in error["message"]


WRONG_METHODS = [
    ("GET", "/v1/chat/completions", "POST"),
    ("PUT", "/v1/completions", "POST"),
    ("DELETE", "/v1/responses", "POST"),
    ("GET", "/v1/embeddings", "POST"),
    ("GET", "/v1/images/generations", "POST"),
    ("GET", "/v1/audio/transcriptions", "POST"),
    ("POST", "/v1/models", "GET"),
    ("DELETE", "/v1/models", "GET"),
]


async def test_wrong_method_is_405(stack: Stack) -> None:
    _, key = await stack.account_and_key()
    for method, path, allowed in WRONG_METHODS:
        reply = await call(stack, method, path, key=key)
        error = assert_error(reply, 405, "method_not_allowed")
        assert allowed in reply.headers["Allow"].split(", ")
        assert method in error["message"]


# -- 413 --------------------------------------------------------------------------------------


def _big_chat(size: int) -> bytes:
    filler = "x" * size
    return (
        b'{"model": "gpt-oss-120b", "messages": [{"role": "user", "content": "'
        + filler.encode()
        + b'"}]}'
    )


async def test_json_body_over_the_cap_with_content_length(stack: Stack) -> None:
    account_id, key = await stack.account_and_key()
    reply = await call(
        stack,
        "POST",
        "/v1/chat/completions",
        key=key,
        data=_big_chat(JSON_CAP * 2),
        headers={"Content-Type": "application/json"},
    )
    assert_error(reply, 413, "request_entity_too_large")
    assert "x-ratelimit-remaining-requests" in reply.headers
    assert await stack.sim_journal() == []
    assert await charges(stack, account_id) == []


async def test_json_body_over_the_cap_chunked(stack: Stack) -> None:
    _, key = await stack.account_and_key()
    body = _big_chat(JSON_CAP * 4)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 1024):
            yield body[start : start + 1024]

    reply = await call(
        stack,
        "POST",
        "/v1/chat/completions",
        key=key,
        data=chunks(),
        headers={"Content-Type": "application/json"},
    )
    assert_error(reply, 413, "request_entity_too_large")
    assert await stack.sim_journal() == []


async def test_json_body_just_under_the_cap_is_served(stack: Stack) -> None:
    _, key = await stack.account_and_key()
    body = _big_chat(JSON_CAP - 200)
    assert len(body) <= JSON_CAP
    reply = await call(
        stack,
        "POST",
        "/v1/chat/completions",
        key=key,
        data=body,
        headers={"Content-Type": "application/json"},
    )
    assert reply.status == 200, reply.body


# -- headers on every response ----------------------------------------------------------------


async def test_request_id_on_every_response(stack: Stack) -> None:
    _, key = await stack.account_and_key()
    replies = [
        await call(stack, "GET", "/v1/models", key=key),
        await call(stack, "GET", "/nope"),
        await call(stack, "GET", "/v1/chat/completions"),
        await call(stack, "GET", "/v1/models"),
        await call(stack, "POST", "/v1/chat/completions", key=key, json={"model": "gpt-4o"}),
        await call(
            stack,
            "POST",
            "/v1/chat/completions",
            key=key,
            json={"model": "gpt-oss-120b", "messages": MSG, "stream": True, "max_tokens": 2},
        ),
        await call(stack, "GET", "/healthz"),
    ]
    ids = [reply.headers.get("x-request-id") for reply in replies]
    assert all(ids), ids
    assert len(set(ids)) == len(ids)


async def test_request_id_through_the_sdk(stack: Stack) -> None:
    _, key = await stack.account_and_key()
    raw = await stack.client(key).chat.completions.with_raw_response.create(
        model="gpt-oss-120b",
        messages=MSG,
        max_tokens=1,  # type: ignore[arg-type]
    )
    assert raw.headers["x-request-id"].startswith("req_")
    with pytest.raises(openai.BadRequestError) as caught:
        await stack.client(key).chat.completions.create(model="gpt-4o", messages=MSG)  # type: ignore[arg-type]
    assert caught.value.request_id is not None or caught.value.response.headers["x-request-id"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/models", None),
        (
            "POST",
            "/v1/chat/completions",
            {"model": "gpt-oss-120b", "messages": MSG, "max_tokens": 1},
        ),
        ("POST", "/v1/embeddings", {"model": "bge-m3", "input": "x"}),
        ("POST", "/v1/chat/completions", {"model": "gpt-4o", "messages": MSG}),
        ("POST", "/v1/chat/completions", {"model": "gpt-oss-120b"}),
    ],
)
async def test_rate_limit_headers_on_authenticated_responses(
    stack: Stack, method: str, path: str, body: dict[str, Any] | None
) -> None:
    _, key = await stack.account_and_key()
    reply = await call(stack, method, path, key=key, json=body)
    for name in RATE_HEADERS:
        assert name in reply.headers, (reply.status, name)
    assert reply.headers["x-ratelimit-limit-requests"] == "600"  # the pro tier
    assert int(reply.headers["x-ratelimit-remaining-requests"]) < 600


async def test_rate_limit_headers_count_down(stack: Stack) -> None:
    _, key = await stack.account_and_key()
    remaining = []
    for _ in range(3):
        reply = await call(stack, "GET", "/v1/models", key=key)
        remaining.append(int(reply.headers["x-ratelimit-remaining-requests"]))
    assert remaining == sorted(remaining, reverse=True)
    assert remaining[0] > remaining[-1]


async def test_429_with_retry_after(stack: Stack) -> None:
    account_id, key = await stack.account_and_key()
    [record] = await stack.runtime.keys.list(account_id)
    await stack.runtime.keys.set_limits(record.id, {"rpm_override": 2}, actor="test")
    statuses = []
    for _ in range(3):
        reply = await call(stack, "GET", "/v1/models", key=key)
        statuses.append(reply.status)
    assert statuses == [200, 200, 429]
    assert_error(reply, 429, "rate_limit_exceeded")
    retry_after = reply.headers["Retry-After"]
    assert retry_after.isdigit()
    assert int(retry_after) >= 1
    assert reply.headers["x-ratelimit-remaining-requests"] == "0"


async def test_402_without_credit(stack: Stack) -> None:
    _, key = await stack.account_and_key(usd=None)
    reply = await call(
        stack,
        "POST",
        "/v1/chat/completions",
        key=key,
        json={"model": "gpt-oss-120b", "messages": MSG, "max_tokens": 10},
    )
    assert_error(reply, 402, "insufficient_funds")
    assert await stack.sim_journal() == []
    # /v1/models is free: no credit needed
    assert (await call(stack, "GET", "/v1/models", key=key)).status == 200


async def test_the_request_id_is_in_the_log(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    _, key = await stack.account_and_key()
    caplog.set_level(logging.INFO, logger="bastion.request")
    reply = await call(stack, "POST", "/v1/chat/completions", key=key, json={"model": "gpt-4o"})
    request_id = reply.headers["x-request-id"]
    [record] = [r for r in caplog.records if getattr(r, "request_id", None) == request_id]
    assert record.__dict__["status"] == 400
    assert record.__dict__["path"] == "/v1/chat/completions"
    assert key not in repr(record.__dict__)

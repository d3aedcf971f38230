"""Server-sent event streams: chunk by chunk, [DONE], usage only when asked, the model id,
and a client that leaves mid-stream cancelling the upstream and releasing its hold."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp
import pytest

from tests.support.conformance import (
    call,
    charges,
    eventually,
    holds_released,
    journal_for,
    sse_data,
    sse_json,
)
from tests.support.harness import Stack
from tests.support.openapi import validate

CHAT = [{"role": "user", "content": "Tell me a story"}]

STREAMS: dict[str, tuple[str, dict[str, Any]]] = {
    "chat": ("/v1/chat/completions", {"messages": CHAT, "max_tokens": 6}),
    "completions": ("/v1/completions", {"prompt": "Once upon", "max_tokens": 6}),
}


@pytest.fixture
def config() -> dict[str, Any]:
    return {
        "models": {
            "gpt-oss-20b": {
                "deployments": [{"upstream": "simulator", "model": "openai/gpt-oss-20b"}]
            }
        }
    }


async def _open_sdk_stream(stack: Stack, key: str, endpoint: str, **extra: Any) -> Any:
    client = stack.client(key)
    if endpoint == "chat":
        return await client.chat.completions.create(
            model="gpt-oss-120b", messages=CHAT, stream=True, **extra
        )
    if endpoint == "completions":
        return await client.completions.create(
            model="gpt-oss-120b", prompt="Once upon", stream=True, **extra
        )
    return await client.responses.create(model="gpt-oss-120b", input="Hi", stream=True, **extra)


@pytest.mark.parametrize("endpoint", ["chat", "completions", "responses"])
async def test_chunks_arrive_before_the_stream_ends(stack: Stack, endpoint: str) -> None:
    """With paced tokens, the SDK holds its first chunks while the upstream is still sending."""
    await stack.sim_control(tokens_per_second=50, first_token_ms=0)
    _, key = await stack.account_and_key()
    limit = {"max_output_tokens": 200} if endpoint == "responses" else {"max_tokens": 200}
    stream = await _open_sdk_stream(stack, key, endpoint, **limit)
    seen = []
    async for _chunk in stream:
        stats = await stack.sim_stats()
        seen.append((stats["streams_started"], stats["streams_completed"]))
        if len(seen) == 5:
            break
    await stream.close()
    assert seen == [(1, 0)] * 5  # five chunks in hand, the upstream's stream still going


@pytest.mark.parametrize("endpoint", ["chat", "completions", "responses"])
async def test_chunks_are_relayed_while_the_upstream_hangs(stack: Stack, endpoint: str) -> None:
    """Without any timing: the upstream sends a few events and then never ends its stream;
    the client has them all the same (nothing waits for the end to flush)."""
    await stack.sim_control(fault="stall", stall_after_chunks=6)
    _, key = await stack.account_and_key()
    limit = {"max_output_tokens": 50} if endpoint == "responses" else {"max_tokens": 50}
    stream = await _open_sdk_stream(stack, key, endpoint, **limit)
    received = 0
    async for _chunk in stream:
        received += 1
        if received == 5:
            break
    await stream.close()
    assert received == 5
    assert (await stack.sim_stats())["streams_completed"] == 0


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
async def test_sdk_stream_content(stack: Stack, endpoint: str) -> None:
    _, key = await stack.account_and_key()
    stream = await _open_sdk_stream(stack, key, endpoint, max_tokens=5)
    chunks = [chunk async for chunk in stream]
    assert {c.model for c in chunks} == {"gpt-oss-120b"}
    finishes = [choice.finish_reason for c in chunks for choice in c.choices]
    assert finishes[-1] in ("stop", "length")
    assert all(f is None for f in finishes[:-1])
    assert all(c.usage is None for c in chunks)
    if endpoint == "chat":
        for chunk in chunks:
            validate(chunk.model_dump(exclude_unset=True), "CreateChatCompletionStreamResponse")
    else:  # OpenAI's schema has no chunk type for completions: the last one is a full object
        validate(chunks[-1].model_dump(exclude_unset=True), "CreateCompletionResponse")


async def test_sdk_responses_stream(stack: Stack) -> None:
    _, key = await stack.account_and_key()
    stream = await _open_sdk_stream(stack, key, "responses", max_output_tokens=5)
    events = [event async for event in stream]
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created"
    assert kinds[-1] in ("response.completed", "response.incomplete")
    assert kinds.count("response.output_text.delta") == 5
    final = events[-1].response
    assert final.model == "gpt-oss-120b"
    assert final.usage is not None
    assert final.usage.output_tokens == 5
    validate(final.model_dump(exclude_unset=True), "Response")


@pytest.mark.parametrize("endpoint", sorted(STREAMS))
async def test_raw_stream_headers_and_done(stack: Stack, endpoint: str) -> None:
    _, key = await stack.account_and_key()
    path, body = STREAMS[endpoint]
    reply = await call(
        stack, "POST", path, key=key, json={"model": "gpt-oss-120b", "stream": True, **body}
    )
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/event-stream")
    assert reply.headers["Cache-Control"] == "no-cache"
    assert reply.headers["X-Accel-Buffering"] == "no"
    assert "Content-Encoding" not in reply.headers
    assert "x-request-id" in reply.headers
    assert "x-ratelimit-remaining-requests" in reply.headers
    assert reply.body.endswith(b"data: [DONE]\n\n")
    data = sse_data(reply.body)
    assert data.count(b"[DONE]") == 1
    for event in sse_json(reply.body):
        assert "usage" not in event  # Bastion asked for usage; the client did not
        assert event["model"] == "gpt-oss-120b"
    # Bastion asked the upstream for usage on the client's behalf
    [sent] = await journal_for(stack, path)
    assert sent["body"]["stream_options"]["include_usage"] is True


@pytest.mark.parametrize("endpoint", sorted(STREAMS))
async def test_usage_chunk_only_when_asked(stack: Stack, endpoint: str) -> None:
    _, key = await stack.account_and_key()
    path, body = STREAMS[endpoint]
    payload = {
        "model": "gpt-oss-120b",
        "stream": True,
        "stream_options": {"include_usage": True},
        **body,
    }
    reply = await call(stack, "POST", path, key=key, json=payload)
    events = sse_json(reply.body)
    *content, last = events
    assert last["choices"] == []
    assert last["usage"]["completion_tokens"] == 6
    assert last["usage"]["total_tokens"] == last["usage"]["prompt_tokens"] + 6
    # as OpenAI does: every other chunk carries "usage": null
    assert all(event["usage"] is None for event in content)
    assert reply.body.endswith(b"data: [DONE]\n\n")


async def test_usage_chunk_through_the_sdk(stack: Stack) -> None:
    _, key = await stack.account_and_key()
    stream = await _open_sdk_stream(
        stack, key, "chat", max_tokens=4, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 4
    assert all(c.usage is None for c in chunks[:-1])


async def test_stream_with_include_usage_false(stack: Stack) -> None:
    _, key = await stack.account_and_key()
    reply = await call(
        stack,
        "POST",
        "/v1/chat/completions",
        key=key,
        json={
            "model": "gpt-oss-120b",
            "messages": CHAT,
            "stream": True,
            "max_tokens": 3,
            "stream_options": {"include_usage": False},
        },
    )
    assert reply.status == 200
    assert all("usage" not in event for event in sse_json(reply.body))


@pytest.mark.parametrize("endpoint", [*sorted(STREAMS), "responses"])
async def test_stream_reports_the_client_model_id(stack: Stack, endpoint: str) -> None:
    _, key = await stack.account_and_key()
    if endpoint == "responses":
        path, body = "/v1/responses", {"input": "hi", "max_output_tokens": 3}
    else:
        path, body = STREAMS[endpoint]
    reply = await call(
        stack, "POST", path, key=key, json={"model": "gpt-oss-20b", "stream": True, **body}
    )
    assert reply.status == 200
    assert b"openai/gpt-oss-20b" not in reply.body
    for event in sse_json(reply.body):
        model = event["response"]["model"] if "response" in event else event.get("model")
        assert model in (None, "gpt-oss-20b")
    [sent] = await journal_for(stack, path)
    assert sent["body"]["model"] == "openai/gpt-oss-20b"


async def test_responses_stream_raw(stack: Stack) -> None:
    _, key = await stack.account_and_key()
    reply = await call(
        stack,
        "POST",
        "/v1/responses",
        key=key,
        json={"model": "gpt-oss-120b", "input": "hi", "stream": True, "max_output_tokens": 4},
    )
    assert reply.status == 200
    assert b"event: response.created\n" in reply.body
    events = sse_json(reply.body)
    assert events[-1]["type"] == "response.completed" or events[-1]["type"] == (
        "response.incomplete"
    )
    assert [e["sequence_number"] for e in events] == list(range(len(events)))


async def test_streams_are_charged_once(stack: Stack) -> None:
    account_id, key = await stack.account_and_key()
    stream = await _open_sdk_stream(stack, key, "chat", max_tokens=7)
    async for _ in stream:
        pass
    [charge] = await charges(stack, account_id)
    assert charge["usage"]["output_tokens"] == 7


# -- a client that leaves mid-stream ---------------------------------------------------------


async def _holds_released(stack: Stack, account_id: str) -> bool:
    return await holds_released(stack, account_id)


async def _cancelled(stack: Stack) -> bool:
    async def seen() -> bool:
        return (await stack.sim_stats())["streams_cancelled"] == 1

    return await eventually(seen)


@pytest.mark.parametrize("endpoint", ["chat", "completions", "responses"])
async def test_sdk_disconnect_cancels_the_upstream(stack: Stack, endpoint: str) -> None:
    await stack.sim_control(tokens_per_second=20, first_token_ms=0)
    account_id, key = await stack.account_and_key()
    limit = {"max_output_tokens": 400} if endpoint == "responses" else {"max_tokens": 400}
    stream = await _open_sdk_stream(stack, key, endpoint, **limit)
    received = 0
    async for _ in stream:
        received += 1
        if received == 4:
            break
    await stream.close()
    assert await _cancelled(stack)
    assert await _holds_released(stack, account_id)
    stats = await stack.sim_stats()
    assert stats["streams_completed"] == 0
    assert stats["in_flight"] == 0
    # tokens produced up to the disconnect are billed, not the 400 held for
    [charge] = await charges(stack, account_id)
    assert 0 < charge["usage"]["output_tokens"] < 400


async def test_raw_disconnect_cancels_the_upstream(stack: Stack) -> None:
    await stack.sim_control(tokens_per_second=20, first_token_ms=0)
    account_id, key = await stack.account_and_key()
    async with aiohttp.ClientSession() as session:
        response = await session.post(
            stack.url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json={"model": "gpt-oss-120b", "messages": CHAT, "stream": True, "max_tokens": 400},
        )
        assert response.status == 200
        first = await response.content.readuntil(b"\n\n")
        assert first.startswith(b"data: ")
        response.close()  # drop the connection mid-stream
    assert await _cancelled(stack)
    assert await _holds_released(stack, account_id)


async def test_disconnect_before_the_first_byte_is_free(stack: Stack) -> None:
    """A client gone while the upstream has not answered yet: the upstream request is
    cancelled, the hold released, and nothing charged."""
    await stack.sim_control(fault="slow_first_byte", slow_first_byte_ms=30_000)
    account_id, key = await stack.account_and_key()
    session = aiohttp.ClientSession()
    request = asyncio.ensure_future(
        session.post(
            stack.url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json={"model": "gpt-oss-120b", "messages": CHAT, "stream": True, "max_tokens": 5},
        )
    )

    async def upstream_waiting() -> bool:
        return (await stack.sim_stats())["in_flight"] == 1

    assert await eventually(upstream_waiting)
    request.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await request
    await session.close()

    async def upstream_gone() -> bool:
        return (await stack.sim_stats())["in_flight"] == 0

    assert await eventually(upstream_gone)
    assert await _holds_released(stack, account_id)
    assert await charges(stack, account_id) == []

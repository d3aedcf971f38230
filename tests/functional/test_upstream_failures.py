"""Upstream failures: 502 ``upstream_error`` without the upstream's body, failover to a healthy
deployment before the first byte, circuit breaking, timeouts, and no charge for any of it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai
import orjson
import pytest
from aiohttp import web

from bastion.simulator import SimulatorOptions
from tests.support.conformance import (
    INTERNAL_DETAIL,
    assert_error,
    call,
    charges,
    holds_released,
    journal_for,
    sse_data,
    transcription_form,
    wav_bytes,
)
from tests.support.harness import Stack, start_simulator
from tests.support.ports import free_port

MSG = [{"role": "user", "content": "hi"}]
ODD_KINDS = ("redirect", "bad-json", "not-object", "teapot", "empty-stream", "cut-stream")
# Short enough to keep the timeout tests quick, long enough for a loaded CI machine.
TIMEOUTS = {"connect_s": 1.0, "first_byte_s": 1.0, "between_chunks_s": 1.0, "total_s": 2.0}


async def _odd_chat(request: web.Request) -> web.StreamResponse:
    kind = request.match_info["kind"]
    await request.read()
    if kind == "redirect":
        raise web.HTTPTemporaryRedirect("http://127.0.0.1:9/v1/chat/completions")
    if kind == "bad-json":
        return web.Response(body=b'{"id": "x", "choices": [', content_type="application/json")
    if kind == "not-object":
        return web.Response(body=b"[1, 2, 3]", content_type="application/json")
    if kind == "teapot":
        return web.json_response(
            {"error": {"message": f"{INTERNAL_DETAIL} echo of the prompt", "code": "teapot"}},
            status=418,
        )
    if kind == "cut-stream":  # two chunks, then the connection ends without [DONE]
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for text in ("Hel", "lo"):
            chunk = {
                "object": "chat.completion.chunk",
                "model": "x",
                "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
            }
            await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
        await response.write_eof()
        return response
    if kind == "empty-stream":
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write_eof()
        return response
    raise web.HTTPNotFound()


@pytest.fixture
async def odd_upstream() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/{kind}/v1/chat/completions", _odd_chat)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


@pytest.fixture
async def broken_simulator() -> AsyncIterator[str]:
    runner, url = await start_simulator(
        SimulatorOptions(tokens_per_second=0, first_token_ms=0, fault="5xx")
    )
    yield url
    await runner.cleanup()


def _chat_model(*deployments: dict[str, Any]) -> dict[str, Any]:
    return {
        "category": "chat",
        "endpoints": ["chat", "completions", "responses"],
        "price": {"input_per_mtok": "1", "output_per_mtok": "1"},
        "deployments": list(deployments),
    }


@pytest.fixture
def config(odd_upstream: str, broken_simulator: str, simulator_url: str) -> dict[str, Any]:
    odd = {"timeouts": TIMEOUTS}
    return {
        "upstreams": {
            "simulator": {"timeouts": TIMEOUTS},
            # a generous connect timeout must not lengthen the wait for the first byte
            "patient": {
                "base_url": simulator_url,
                "timeouts": {"connect_s": 30, "first_byte_s": 1.0, "total_s": 60},
            },
            "dead": {"base_url": f"http://127.0.0.1:{free_port()}", "circuit_failures": 3},
            "broken": {"base_url": broken_simulator, "circuit_failures": 3},
            **{f"odd-{kind}": {"base_url": f"{odd_upstream}/{kind}", **odd} for kind in ODD_KINDS},
        },
        "models": {
            "failover-dead": _chat_model(
                {"upstream": "dead", "model": "gpt-oss-120b", "weight": 1000},
                {"upstream": "simulator", "model": "gpt-oss-120b", "weight": 1},
            ),
            "failover-5xx": _chat_model(
                {"upstream": "broken", "model": "gpt-oss-120b", "weight": 1000},
                {"upstream": "simulator", "model": "gpt-oss-120b", "weight": 1},
            ),
            "only-dead": _chat_model({"upstream": "dead", "model": "x"}),
            "patient": _chat_model({"upstream": "patient", "model": "gpt-oss-120b"}),
            **{
                f"odd-{kind}": _chat_model({"upstream": f"odd-{kind}", "model": "x"})
                for kind in ODD_KINDS
            },
        },
    }


REQUESTS: dict[str, tuple[str, dict[str, Any] | None]] = {
    "chat": ("/v1/chat/completions", {"model": "gpt-oss-120b", "messages": MSG, "max_tokens": 3}),
    "chat-stream": (
        "/v1/chat/completions",
        {"model": "gpt-oss-120b", "messages": MSG, "max_tokens": 3, "stream": True},
    ),
    "completions": ("/v1/completions", {"model": "gpt-oss-120b", "prompt": "x", "max_tokens": 3}),
    "responses-stream": (
        "/v1/responses",
        {"model": "gpt-oss-120b", "input": "x", "max_output_tokens": 3, "stream": True},
    ),
    "embeddings": ("/v1/embeddings", {"model": "bge-m3", "input": ["a", "b"]}),
    "images": ("/v1/images/generations", {"model": "sd-xl", "prompt": "x", "size": "512x512"}),
    "transcriptions": ("/v1/audio/transcriptions", None),
}


async def _request(stack: Stack, key: str, name: str) -> Any:
    path, body = REQUESTS[name]
    if body is None:
        form = transcription_form(wav_bytes(0.5), model="whisper-large-v3")
        return await call(stack, "POST", path, key=key, data=form)
    return await call(stack, "POST", path, key=key, json=body)


async def _nothing_owed(stack: Stack, account_id: str, requests: int = 1) -> None:
    assert await holds_released(stack, account_id, requests)
    assert await charges(stack, account_id) == []


@pytest.mark.parametrize("fault", ["5xx", "reset", "wrong_content_type", "slow_first_byte"])
@pytest.mark.parametrize("endpoint", sorted(REQUESTS))
async def test_upstream_faults_are_502(stack: Stack, fault: str, endpoint: str) -> None:
    if fault == "slow_first_byte" and endpoint not in ("chat", "chat-stream", "transcriptions"):
        pytest.skip("one slow upstream per kind of request is enough")
    await stack.sim_control(fault=fault, slow_first_byte_ms=3000)
    account_id, key = await stack.account_and_key()
    reply = await _request(stack, key, endpoint)
    error = assert_error(reply, 502, "upstream_error")
    assert "simulated" not in error["message"]
    assert "worker=3" not in reply.body.decode()
    assert "x-ratelimit-remaining-requests" in reply.headers
    await _nothing_owed(stack, account_id)


async def test_first_byte_timeout_is_counted_from_the_connection(stack: Stack) -> None:
    """``first_byte_s`` bounds the wait for the reply once connected, whatever ``connect_s``
    is: on a new connection and on one taken from the pool."""
    _, key = await stack.account_and_key()
    body = {"model": "patient", "messages": MSG, "max_tokens": 2}
    await stack.sim_control(fault="slow_first_byte", slow_first_byte_ms=5000)
    assert_error(
        await call(stack, "POST", "/v1/chat/completions", key=key, json=body), 502, "upstream_error"
    )
    await stack.sim_control(fault=None)
    assert (await call(stack, "POST", "/v1/chat/completions", key=key, json=body)).status == 200
    await stack.sim_control(fault="slow_first_byte")  # the pooled connection is reused
    assert_error(
        await call(stack, "POST", "/v1/chat/completions", key=key, json=body), 502, "upstream_error"
    )


async def test_502_through_the_sdk(stack: Stack) -> None:
    await stack.sim_control(fault="5xx")
    _, key = await stack.account_and_key()
    with pytest.raises(openai.InternalServerError) as caught:
        await stack.client(key).chat.completions.create(model="gpt-oss-120b", messages=MSG)  # type: ignore[arg-type]
    assert caught.value.status_code == 502
    assert caught.value.code == "upstream_error"
    assert caught.value.type == "api_error"
    assert INTERNAL_DETAIL not in str(caught.value.body)


async def test_stall_before_the_first_byte_is_502(stack: Stack) -> None:
    await stack.sim_control(fault="stall")
    account_id, key = await stack.account_and_key()
    reply = await _request(stack, key, "chat")
    assert_error(reply, 502, "upstream_error")
    await _nothing_owed(stack, account_id)


@pytest.mark.parametrize("endpoint", ["chat-stream", "responses-stream"])
async def test_stall_mid_stream_ends_with_an_error_event(stack: Stack, endpoint: str) -> None:
    await stack.sim_control(fault="stall", stall_after_chunks=4)
    account_id, key = await stack.account_and_key()
    path, body = REQUESTS[endpoint]
    assert body is not None
    reply = await call(stack, "POST", path, key=key, json={**body, "max_tokens": 50})
    assert reply.status == 200
    data = sse_data(reply.body)
    assert b"[DONE]" not in data
    *relayed, last = data
    assert len(relayed) >= 1
    error = orjson.loads(last)
    assert set(error) == {"error"}
    assert error["error"]["code"] == "upstream_error"
    assert error["error"]["type"] == "api_error"
    assert set(error["error"]) == {"message", "type", "code"}
    await _nothing_owed(stack, account_id)


async def test_stall_mid_stream_through_the_sdk(stack: Stack) -> None:
    await stack.sim_control(fault="stall", stall_after_chunks=3)
    _, key = await stack.account_and_key()
    stream = await stack.client(key).chat.completions.create(
        model="gpt-oss-120b",
        messages=MSG,  # type: ignore[arg-type]
        stream=True,
        max_tokens=50,
    )
    received = []

    async def read_all() -> None:
        async for chunk in stream:
            received.append(chunk)

    with pytest.raises(openai.APIError):
        await read_all()
    assert received


async def test_a_stream_cut_short_ends_with_an_error_event(stack: Stack) -> None:
    account_id, key = await stack.account_and_key()
    reply = await call(
        stack,
        "POST",
        "/v1/chat/completions",
        key=key,
        json={"model": "odd-cut-stream", "messages": MSG, "stream": True},
    )
    assert reply.status == 200
    *relayed, last = sse_data(reply.body)
    assert [orjson.loads(d)["choices"][0]["delta"]["content"] for d in relayed] == ["Hel", "lo"]
    assert orjson.loads(last)["error"]["code"] == "upstream_error"
    await _nothing_owed(stack, account_id)


async def test_total_timeout_ends_a_long_stream(stack: Stack) -> None:
    await stack.sim_control(tokens_per_second=10, first_token_ms=0)
    account_id, key = await stack.account_and_key()
    reply = await call(
        stack,
        "POST",
        "/v1/chat/completions",
        key=key,
        json={"model": "gpt-oss-120b", "messages": MSG, "max_tokens": 100, "stream": True},
    )
    assert reply.status == 200
    last = sse_data(reply.body)[-1]
    assert b'"upstream_error"' in last
    await _nothing_owed(stack, account_id)


# -- several deployments ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "failing"), [("failover-dead", "dead"), ("failover-5xx", "broken")]
)
@pytest.mark.parametrize("stream", [False, True])
async def test_failover_to_the_healthy_deployment(
    stack: Stack, model: str, failing: str, stream: bool
) -> None:
    account_id, key = await stack.account_and_key()
    client = stack.client(key)
    for _ in range(5):
        if stream:
            chunks = [
                c
                async for c in await client.chat.completions.create(
                    model=model,
                    messages=MSG,  # type: ignore[arg-type]
                    max_tokens=2,
                    stream=True,
                )
            ]
            assert {c.model for c in chunks} == {model}
        else:
            reply = await client.chat.completions.create(model=model, messages=MSG, max_tokens=2)  # type: ignore[arg-type]
            assert reply.model == model
    circuits = stack.runtime.circuits.snapshot()
    bad = circuits[f"{failing}/gpt-oss-120b"]
    assert bad["state"] == "open"
    assert bad["failures"] == 3  # opened after circuit_failures, then skipped
    assert circuits["simulator/gpt-oss-120b"]["successes"] == 5
    assert len(await charges(stack, account_id)) == 5


async def test_every_deployment_failing_is_502(stack: Stack) -> None:
    account_id, key = await stack.account_and_key()
    for _ in range(4):
        reply = await call(
            stack,
            "POST",
            "/v1/chat/completions",
            key=key,
            json={"model": "only-dead", "messages": MSG},
        )
        assert_error(reply, 502, "upstream_error")
    assert stack.runtime.circuits.snapshot()["dead/x"]["state"] == "open"
    await _nothing_owed(stack, account_id, requests=4)


@pytest.mark.parametrize(
    ("model", "stream"),
    [
        ("odd-redirect", False),
        ("odd-bad-json", False),
        ("odd-not-object", False),
        ("odd-teapot", False),
        ("odd-teapot", True),
        ("odd-empty-stream", True),
    ],
)
async def test_odd_upstream_answers_are_502(stack: Stack, model: str, stream: bool) -> None:
    account_id, key = await stack.account_and_key()
    reply = await call(
        stack,
        "POST",
        "/v1/chat/completions",
        key=key,
        json={"model": model, "messages": MSG, "stream": stream},
    )
    assert_error(reply, 502, "upstream_error")
    await _nothing_owed(stack, account_id)


# -- upstream rejections of passthrough fields -----------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/responses", {"model": "gpt-oss-120b", "input": "hi", "store": True}, "store"),
        (
            "/v1/responses",
            {"model": "gpt-oss-120b", "input": "hi", "previous_response_id": "resp_1"},
            "previous_response_id",
        ),
        ("/v1/images/generations", {"model": "sd-xl", "prompt": "x", "size": "7x7"}, "size"),
        (
            "/v1/embeddings",
            {"model": "bge-m3", "input": "x", "encoding_format": "int8"},
            "encoding_format",
        ),
    ],
)
async def test_upstream_rejection_is_502_with_a_useful_message(
    stack: Stack, path: str, body: dict[str, Any], param: str
) -> None:
    account_id, key = await stack.account_and_key()
    reply = await call(stack, "POST", path, key=key, json=body)
    error = assert_error(reply, 502, "upstream_error")
    assert "400" in error["message"]
    assert f"`{param}`" in error["message"] or f"param: {param}" in error["message"]
    assert "this upstream does not store" not in error["message"]  # no upstream free text
    await _nothing_owed(stack, account_id)
    assert len(await journal_for(stack, path)) == 1  # a 4xx is not retried elsewhere


async def test_store_true_through_the_sdk(stack: Stack) -> None:
    _, key = await stack.account_and_key()
    with pytest.raises(openai.InternalServerError) as caught:
        await stack.client(key).responses.create(model="gpt-oss-120b", input="hi", store=True)
    assert caught.value.status_code == 502
    assert "store" in caught.value.message


async def test_upstream_refusing_the_operator_credential_is_502(stack: Stack) -> None:
    await stack.sim_control(api_key="a-credential-bastion-does-not-have")
    _, key = await stack.account_and_key()
    reply = await _request(stack, key, "chat")
    assert_error(reply, 502, "upstream_error")  # not 401: the client's key is fine

"""The billing rule for every way a request ends (docs/billing.md), each checked in the ledger."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from bastion.core.usage import Usage, price_usage
from bastion.errors import StoreUnavailableError
from tests.support.harness import Stack, make_settings

MODEL = "gpt-oss-20b"
MESSAGES = [{"role": "user", "content": "Tell me about ledgers."}]


async def charges(stack: Stack, account_id: str) -> list[dict[str, Any]]:
    await stack.settled()
    entries = await stack.runtime.db.ledger.entries(account_id)
    return [e for e in entries if e["kind"] == "charge"]


def cost_of(stack: Stack, model: str, **usage: int) -> int:
    found = stack.runtime.settings.catalog.get(model)
    assert found is not None
    return price_usage(Usage(**usage), found.price)


async def holds_released(stack: Stack, account_id: str) -> bool:
    for _ in range(200):
        if await stack.runtime.admission_store.open_holds(account_id) == 0:
            return True
        await asyncio.sleep(0.01)
    return False


async def test_success_is_charged_the_reported_usage(stack: Stack) -> None:
    account_id, secret = await stack.account_and_key()
    reply = await stack.client(secret).chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=7
    )
    assert reply.usage is not None
    [charge] = await charges(stack, account_id)
    expected = cost_of(
        stack,
        MODEL,
        input_tokens=reply.usage.prompt_tokens,
        output_tokens=reply.usage.completion_tokens,
    )
    assert -charge["amount"] == expected
    assert charge["usage"] == {
        "source": "upstream",
        "input_tokens": reply.usage.prompt_tokens,
        "output_tokens": reply.usage.completion_tokens,
    }
    assert await holds_released(stack, account_id)


@pytest.mark.parametrize("include_usage", [True, False])
async def test_streams_are_charged_from_upstream_usage_asked_on_the_clients_behalf(
    stack: Stack, include_usage: bool
) -> None:
    account_id, secret = await stack.account_and_key()
    options = {"stream_options": {"include_usage": True}} if include_usage else {}
    stream = await stack.client(secret).chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=9, stream=True, **options
    )
    chunks = [chunk async for chunk in stream]
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == (1 if include_usage else 0)
    [charge] = await charges(stack, account_id)
    usage = charge["usage"]
    assert usage["source"] == "upstream"
    assert usage["output_tokens"] == 9
    assert -charge["amount"] == cost_of(
        stack, MODEL, input_tokens=usage["input_tokens"], output_tokens=9
    )


async def test_upstream_error_is_free(stack: Stack) -> None:
    account_id, secret = await stack.account_and_key()
    await stack.sim_control(fault="5xx")
    with pytest.raises(openai.APIStatusError) as caught:
        await stack.client(secret).chat.completions.create(model=MODEL, messages=MESSAGES)
    assert caught.value.status_code == 502
    assert await charges(stack, account_id) == []
    assert await holds_released(stack, account_id)


async def test_client_gone_before_the_first_byte_is_free(stack: Stack) -> None:
    account_id, secret = await stack.account_and_key()
    await stack.sim_control(fault="slow_first_byte", slow_first_byte_ms=60_000)
    request = asyncio.ensure_future(
        stack.client(secret).chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    )
    for _ in range(300):
        if (await stack.sim_stats())["in_flight"]:
            break
        await asyncio.sleep(0.01)
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    assert await holds_released(stack, account_id)
    assert await charges(stack, account_id) == []


async def test_client_gone_mid_stream_pays_for_what_was_produced(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    await stack.sim_control(tokens_per_second=100.0, first_token_ms=0)
    account_id, secret = await stack.account_and_key()
    body = {"model": MODEL, "messages": MESSAGES, "max_tokens": 500, "stream": True}
    seen = 0
    async with http.post(
        f"{stack.url}/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {secret}"},
    ) as response:
        assert response.status == 200
        async for line in response.content:
            if line.startswith(b"data: {"):
                seen += 1
            if seen >= 5:
                break
        response.close()  # the client leaves mid-stream
    assert await holds_released(stack, account_id)
    for _ in range(300):
        if (await stack.sim_stats())["streams_cancelled"]:
            break
        await asyncio.sleep(0.01)
    assert (await stack.sim_stats())["streams_cancelled"] == 1
    [charge] = await charges(stack, account_id)
    usage = charge["usage"]
    # Produced so far: at least what the client saw (minus the role chunk), far less than asked.
    assert seen - 1 <= usage["output_tokens"] < 500
    assert usage["input_tokens"] > 0
    assert -charge["amount"] == cost_of(
        stack, MODEL, input_tokens=usage["input_tokens"], output_tokens=usage["output_tokens"]
    )


async def test_stream_without_usage_is_charged_for_what_was_streamed(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    await stack.sim_control(report_usage=False)
    account_id, secret = await stack.account_and_key()
    body = {"model": MODEL, "messages": MESSAGES, "max_tokens": 6, "stream": True}
    content_events = 0
    async with http.post(
        f"{stack.url}/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {secret}"},
    ) as response:
        raw = await response.read()
    for line in raw.split(b"\n"):
        if line.startswith(b"data: {") and b'"content":"' in line and b'"content":""' not in line:
            content_events += 1
    assert raw.rstrip().endswith(b"data: [DONE]")
    [charge] = await charges(stack, account_id)
    usage = charge["usage"]
    assert usage["source"] == "estimated"
    assert usage["output_tokens"] == content_events == 6
    assert usage["input_tokens"] >= 1


async def test_unary_answer_without_usage_is_charged_an_estimate(stack: Stack) -> None:
    await stack.sim_control(report_usage=False)
    account_id, secret = await stack.account_and_key()
    await stack.client(secret).chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=4)
    [charge] = await charges(stack, account_id)
    assert charge["usage"]["source"] == "estimated"
    assert charge["amount"] < 0


async def test_insufficient_funds_is_refused_before_any_upstream_call(stack: Stack) -> None:
    account_id, secret = await stack.account_and_key(usd="0.000010")
    before = len(await stack.sim_journal())
    with pytest.raises(openai.APIStatusError) as caught:
        await stack.client(secret).chat.completions.create(
            model=MODEL, messages=MESSAGES, max_tokens=1000
        )
    assert caught.value.status_code == 402
    assert caught.value.code == "insufficient_funds"
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["type"] == "insufficient_quota"
    assert "needs up to $0.0002" in body["message"]
    assert "$0.000010 available" in body["message"]
    assert len(await stack.sim_journal()) == before
    assert await charges(stack, account_id) == []


async def test_spend_cap_stops_a_key_and_counts_in_the_same_ledger(stack: Stack) -> None:
    account_id, secret = await stack.account_and_key(usd="5")
    [key] = await stack.runtime.keys.list(account_id)
    per_call = cost_of(stack, MODEL, input_tokens=200, output_tokens=50)
    await stack.runtime.keys.set_limits(key.id, {"monthly_spend_cap": per_call * 3}, actor="t")
    stack.runtime.authenticator.drop_key(key.id)
    client = stack.client(secret)
    outcomes: list[int | str] = []
    for _ in range(10):
        try:
            await client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=50)
            outcomes.append(200)
        except openai.APIStatusError as error:
            outcomes.append(error.code or "")
    assert outcomes[0] == 200
    assert outcomes[-1] == "spend_cap_exceeded"
    assert set(outcomes) == {200, "spend_cap_exceeded"}
    spent = -sum(c["amount"] for c in await charges(stack, account_id))
    assert spent <= per_call * 3
    spent_db, _ = await stack.runtime.db.ledger.key_month_spend(key.id, _month())
    assert spent_db == spent


def _month() -> int:
    from bastion.core.calendar import month_of, now_ms

    return month_of(now_ms())


async def test_store_unavailable_at_admission_fails_closed(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    account_id, secret = await stack.account_and_key()

    async def down(*_args: object) -> None:
        raise StoreUnavailableError()

    await stack.runtime.admission_store.forget_account(account_id)
    monkeypatch.setattr(stack.runtime.db.ledger, "funds", down)
    before = len(await stack.sim_journal())
    with pytest.raises(openai.APIStatusError) as caught:
        await stack.client(secret).chat.completions.create(model=MODEL, messages=MESSAGES)
    assert caught.value.status_code == 503
    assert caught.value.code == "service_unavailable"
    assert caught.value.response.headers["retry-after"] == "1"
    assert len(await stack.sim_journal()) == before


@pytest.mark.parametrize("stream", [False, True])
async def test_charge_that_cannot_be_written_fails_the_request_and_costs_nothing(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, http: aiohttp.ClientSession, stream: bool
) -> None:
    account_id, secret = await stack.account_and_key()

    def down(*_args: object) -> asyncio.Future[int | None]:
        failed: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        failed.set_exception(StoreUnavailableError())
        return failed

    monkeypatch.setattr(stack.runtime.db.settlements, "enqueue", down)
    body = {"model": MODEL, "messages": MESSAGES, "max_tokens": 3, "stream": stream}
    if stream:
        async with http.post(
            f"{stack.url}/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {secret}"},
        ) as response:
            raw = await response.read()
        assert b"[DONE]" not in raw
        assert b'"code":"service_unavailable"' in raw
    else:
        # The answer was held back whole until the commit: the client gets a 503 in its place.
        async with http.post(
            f"{stack.url}/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {secret}"},
        ) as response:
            raw = await response.read()
            assert response.status == 503
            assert response.headers["retry-after"] == "1"
            assert response.headers["x-request-id"].startswith("req_")
            assert "x-ratelimit-limit-requests" in response.headers
        assert b'"code":"service_unavailable"' in raw
        assert b"choices" not in raw
    monkeypatch.undo()
    assert await charges(stack, account_id) == []
    assert await holds_released(stack, account_id)


async def test_a_client_that_leaves_right_after_its_answer_leaves_nothing_behind(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answer reaches the client from the commit, before its request has released its
    hold; a client that closes the connection at once (cancelling the request's handler)
    must still leave no hold or slot behind, and its usage-history row written."""
    from bastion.storage.sql.settlements import recent_requests

    store: Any = stack.runtime.admission_store
    if hasattr(store, "_release_now"):  # Redis: a release slow enough for the client to leave
        release = store._release_now

        async def slow(*args: Any) -> None:
            await asyncio.sleep(0.05)
            await release(*args)

        monkeypatch.setattr(store, "_release_now", slow)
    account_id, secret = await stack.account_and_key()
    host, port = stack.server.bound[0]
    body = b'{"model":"gpt-oss-20b","messages":[{"role":"user","content":"hi"}],"max_tokens":3}'
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + secret.encode() + b"\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body) + body
    )

    async def one() -> int:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
        writer.transport.abort()  # gone the moment the answer is complete
        return int(head.split(b" ")[1])

    statuses = await asyncio.gather(*(one() for _ in range(30)))
    assert statuses == [200] * 30
    await stack.settled()
    assert await holds_released(stack, account_id)
    assert len(await charges(stack, account_id)) == 30
    rows = await recent_requests(stack.runtime.db.engine, account_id, limit=100)
    assert len(rows) == 30


async def test_a_reload_changes_the_hold_estimate_of_the_next_request(
    stack: Stack, tmp_path: Path
) -> None:
    """``input_bytes_per_token`` is read when the settings are swapped in, not only at start."""
    _, secret = await stack.account_and_key(usd="0.002")  # 2,000 micro-USD
    # 100 KB of prompt: 100,000 tokens held at one byte a token (5,000 micro-USD at $0.05/M)
    messages = [{"role": "user", "content": "x" * 100_000}]
    client = stack.client(secret)
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model=MODEL, messages=messages, max_tokens=1)
    assert caught.value.status_code == 402
    stack.runtime.apply_settings(
        make_settings(
            tmp_path / "data",
            stack.simulator_url,
            {"billing": {"input_bytes_per_token": 100}},
        )
    )
    answer = await client.chat.completions.create(model=MODEL, messages=messages, max_tokens=1)
    assert answer.choices

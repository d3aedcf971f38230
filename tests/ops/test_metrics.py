"""Prometheus metrics on the admin listener: the counts match what clients saw, money matches
the ledger, histograms split gateway overhead from upstream time, upstream health shows."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import openai
import orjson
import pytest
from sqlalchemy import select

from bastion.errors import ConfigError
from bastion.settings import parse_settings
from bastion.storage.sql.tables import ledger
from tests.contract.support import until
from tests.ops.conftest import ADMIN, call, scrape
from tests.support.harness import EXAMPLE, Stack, example_document, merge
from tests.support.services import redis_prefix, redis_url

MODEL = "gpt-oss-20b"
MESSAGES = [{"role": "user", "content": "count me"}]


@pytest.fixture
def config() -> dict[str, Any]:
    return {
        **ADMIN,
        "tiers": {"tiny": {"requests_per_minute": 2, "concurrent_requests": 4}},
    }


async def test_metrics_count_what_clients_saw(stack: Stack) -> None:
    seen: Counter[tuple[str, int]] = Counter()
    _, rich = await stack.account_and_key("10")
    _, tiny = await stack.account_and_key("10", tier="tiny")
    _, broke = await stack.account_and_key(None)
    client = stack.client(rich)

    for _ in range(3):
        await client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=5)
        seen["chat", 200] += 1
    for _ in range(2):
        stream = await client.chat.completions.create(
            model=MODEL, messages=MESSAGES, max_tokens=5, stream=True
        )
        async for _chunk in stream:
            pass
        seen["chat", 200] += 1
    await client.embeddings.create(model="bge-m3", input="hello")
    seen["embeddings", 200] += 1
    await client.models.list()
    seen["models", 200] += 1
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(model="no-such-model", messages=MESSAGES)
    seen["chat", 400] += 1
    for bad in ("qbt_not-a-key", "sk-live-definitely-not-bastion"):
        status, _, _ = await call(stack, "POST", "/v1/chat/completions", bad, json={})
        assert status == 401
        seen["chat", 401] += 1
    tiny_client = stack.client(tiny)
    for _ in range(2):
        await tiny_client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=5)
        seen["chat", 200] += 1
    with pytest.raises(openai.RateLimitError):
        await tiny_client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=5)
    seen["chat", 429] += 1
    with pytest.raises(openai.APIStatusError) as refused:
        await stack.client(broke).chat.completions.create(
            model=MODEL, messages=MESSAGES, max_tokens=5
        )
    assert refused.value.status_code == 402
    seen["chat", 402] += 1
    status, _, _ = await call(stack, "GET", "/no/such/path")
    assert status == 404
    seen["other", 404] += 1
    await stack.settled()

    metrics = await scrape(stack)
    counted = metrics.by("bastion_requests_total", "endpoint", "status")
    assert {(e, int(s)): int(v) for (e, s), v in counted.items()} == dict(seen)
    assert metrics.by("bastion_errors_total", "status", "code") == {
        ("400", "model_not_found"): 1,
        ("401", "invalid_api_key"): 2,
        ("402", "insufficient_funds"): 1,
        ("404", "not_found"): 1,
        ("429", "rate_limit_exceeded"): 1,
    }
    assert metrics.value("bastion_admission_refusals_total", reason="rate_limit") == 1
    assert metrics.value("bastion_admission_refusals_total", reason="insufficient_funds") == 1
    # every chat request that reached an upstream has its upstream time and gateway overhead
    forwarded = seen["chat", 200]
    assert metrics.value("bastion_upstream_duration_seconds_count", endpoint="chat") == forwarded
    assert metrics.value("bastion_gateway_overhead_seconds_count", endpoint="chat") == forwarded
    # admission timed for the admitted and for the 429 and 402 it refused; every charge's commit
    assert metrics.value("bastion_admission_duration_seconds_count", endpoint="chat") == (
        forwarded + 2
    )
    assert metrics.value("bastion_charge_commit_seconds_count", endpoint="chat") == forwarded
    assert metrics.value("bastion_request_duration_seconds_count", endpoint="chat") == sum(
        n for (endpoint, _), n in seen.items() if endpoint == "chat"
    )
    assert metrics.value("bastion_time_to_first_byte_seconds_count", endpoint="chat") == sum(
        n for (endpoint, _), n in seen.items() if endpoint == "chat"
    )
    assert metrics.value("bastion_open_streams") == 0
    assert metrics.value("bastion_requests_in_flight") == 0
    assert metrics.value("bastion_upstream_up", deployment=f"simulator/{MODEL}") == 1
    assert (
        metrics.value(
            "bastion_upstream_circuit_state", deployment=f"simulator/{MODEL}", state="closed"
        )
        == 1
    )
    assert metrics.value("bastion_upstream_successes_total", deployment=f"simulator/{MODEL}") == (
        forwarded
    )

    # money: what the metrics say was charged is what the ledger holds
    async with stack.runtime.db.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(ledger.c.model, ledger.c.amount, ledger.c.usage).where(
                    ledger.c.kind == "charge"
                )
            )
        ).all()
    by_model: Counter[str] = Counter()
    tokens: Counter[tuple[str, str]] = Counter()
    for model, amount, usage in rows:
        by_model[model] += -amount
        for unit, value in orjson.loads(usage).items():
            if unit in ("input_tokens", "output_tokens"):
                tokens[model, unit] += value
    assert metrics.by("bastion_charged_micro_usd_total", "model") == {
        (m,): float(v) for m, v in by_model.items()
    }
    assert metrics.by("bastion_usage_total", "model", "unit") == {
        k: float(v) for k, v in tokens.items()
    }
    assert metrics.value("bastion_settlement_charges_written_total") == len(rows)
    assert metrics.value("bastion_settlement_batches_total") >= 1
    assert metrics.value("bastion_build_info") == 1
    assert metrics.value("process_resident_memory_bytes") > 0


async def test_metrics_are_not_on_the_public_listener(stack: Stack) -> None:
    status, body, _ = await call(stack, "GET", "/metrics")
    assert status == 404
    assert isinstance(body, dict)
    assert body["error"]["code"] == "not_found"


async def test_open_streams_gauge_follows_a_live_stream(stack: Stack) -> None:
    await stack.sim_control(tokens_per_second=50, first_token_ms=0)
    _, key = await stack.account_and_key("10")
    stream = await stack.client(key).chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=40, stream=True
    )
    chunks = stream.__aiter__()
    await chunks.__anext__()
    during = await scrape(stack)
    assert during.value("bastion_open_streams", endpoint="chat") == 1
    assert during.value("bastion_requests_in_flight") == 1
    async for _chunk in chunks:
        pass
    for _ in range(200):  # the gauge drops once the handler returns (bounded wait)
        after = await scrape(stack)
        if after.value("bastion_open_streams", endpoint="chat") == 0:
            break
        await asyncio.sleep(0.01)
    assert after.value("bastion_open_streams", endpoint="chat") == 0


async def test_upstream_failures_open_the_circuit_in_the_metrics(stack: Stack) -> None:
    await stack.sim_control(fault="5xx")
    _, key = await stack.account_and_key("10")
    client = stack.client(key)
    for _ in range(6):
        with pytest.raises(openai.APIStatusError):
            await client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=5)
    metrics = await scrape(stack)
    deployment = f"simulator/{MODEL}"
    assert metrics.value("bastion_upstream_failures_total", deployment=deployment) == 5
    assert metrics.value("bastion_upstream_circuit_state", deployment=deployment, state="open") == 1
    assert metrics.value("bastion_upstream_up", deployment=deployment) == 0
    assert metrics.by("bastion_errors_total", "status", "code") == {("502", "upstream_error"): 6}


@pytest.mark.parametrize(
    "config", [{"admin": {"enabled": True, "port": 0, "token": "admin-token-0123456789"}}]
)
async def test_admin_token_guards_every_admin_path(stack: Stack) -> None:
    assert stack.server.admin_url is not None
    for path in ("/metrics", "/healthz", "/readyz"):
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}):
            async with stack.http.get(stack.server.admin_url + path, headers=headers) as r:
                assert r.status == 401
                assert (await r.json())["error"]["code"] == "invalid_api_key"
    metrics = await scrape(stack, {"Authorization": "Bearer admin-token-0123456789"})
    assert metrics.value("bastion_build_info") == 1


def test_admin_listener_off_loopback_needs_a_token() -> None:
    def load(admin: dict[str, Any]) -> None:
        parse_settings(merge(example_document(), {"admin": admin}), str(EXAMPLE), {})

    with pytest.raises(ConfigError, match=r"admin\.token: is required"):
        load({"enabled": True, "host": "0.0.0.0"})
    with pytest.raises(ConfigError, match=r"admin\.token: must be at least 16"):
        load({"enabled": True, "host": "0.0.0.0", "token": "short"})
    load({"enabled": True, "host": "0.0.0.0", "token": "a-long-enough-token"})
    load({"enabled": True, "host": "::1"})
    load({"enabled": False, "host": "0.0.0.0"})


@pytest.mark.redis
@pytest.mark.parametrize(
    ("config", "reserving"),
    [
        ({**ADMIN, "storage": {"redis_url": redis_url(), "redis_prefix": redis_prefix()}}, True),
        (
            {
                **ADMIN,
                "storage": {
                    "redis_url": redis_url(),
                    "redis_prefix": redis_prefix(),
                    "reserve_ahead": False,
                },
            },
            False,
        ),
    ],
    ids=["reserve-ahead", "off"],
)
async def test_scaled_out_counts_the_requests_admitted_on_a_reservation(
    stack: Stack, reserving: bool
) -> None:
    _, key = await stack.account_and_key("10", tier="pro")  # 600 a minute, 32 at a time
    client = stack.client(key)
    store = stack.runtime.redis_admission
    assert store is not None
    await client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=4)
    if reserving:
        assert await until(lambda: bool(store._reserved))  # taken when the first ended
    await client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=4)
    await stack.settled()
    assert (await scrape(stack)).value("bastion_admissions_reserved_total") == (
        1 if reserving else 0
    )
    assert store.reserved_admissions == (1 if reserving else 0)

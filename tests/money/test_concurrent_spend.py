"""Many concurrent requests against a small balance: holds make overspend impossible."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest

from bastion.core.usage import Usage, price_usage
from tests.support.harness import Stack

MODEL = "gpt-oss-20b"
MAX_TOKENS = 40
REQUESTS = 200


@pytest.fixture
def config() -> dict[str, Any]:
    # Limits high enough that only money decides; every request asks for the same worst case.
    return {"tiers": {"pro": {"requests_per_minute": 100_000, "concurrent_requests": 1_000}}}


async def _one(client: openai.AsyncOpenAI, index: int) -> tuple[int, str | None]:
    messages = [{"role": "user", "content": f"request {index:03d} about exact money"}]
    try:
        raw = await client.chat.completions.with_raw_response.create(
            model=MODEL, messages=messages, max_tokens=MAX_TOKENS
        )
    except openai.APIStatusError as error:
        return error.status_code, error.response.headers.get("x-request-id")
    return raw.http_response.status_code, raw.headers.get("x-request-id")


async def test_two_hundred_concurrent_requests_never_spend_more_than_the_balance(
    stack: Stack,
) -> None:
    model = stack.runtime.settings.catalog.get(MODEL)
    assert model is not None
    # A request body is ~150 bytes: its hold is ~150 input tokens + 40 output tokens.
    per_request_hold = price_usage(Usage(input_tokens=150, output_tokens=MAX_TOKENS), model.price)
    balance_usd = f"{per_request_hold * 50 / 1_000_000:.6f}"
    account_id, secret = await stack.account_and_key(usd=balance_usd)
    funds = await stack.runtime.db.ledger.funds(account_id)
    assert funds is not None
    balance = funds.balance

    client = stack.client(secret)
    results = await asyncio.gather(*(_one(client, i) for i in range(REQUESTS)))
    await stack.settled()

    entries = await stack.runtime.db.ledger.entries(account_id, limit=1_000)
    charges = {e["request_id"]: -e["amount"] for e in entries if e["kind"] == "charge"}
    admitted = {rid for status, rid in results if status == 200}
    refused = [(status, rid) for status, rid in results if status != 200]

    assert {status for status, _ in refused} <= {402}
    assert len(admitted) >= 20  # holds are sized to the worst case, so fewer than 50 fit
    # Every admitted request is charged exactly once; every refused one is free.
    assert set(charges) == admitted
    assert not {rid for _, rid in refused} & set(charges)
    # The total charged never exceeds the balance.
    assert sum(charges.values()) <= balance
    after = await stack.runtime.db.ledger.funds(account_id)
    assert after is not None
    assert after.balance == balance - sum(charges.values())
    assert after.balance >= 0
    assert await stack.runtime.admission_store.open_holds(account_id) == 0
    checked, mismatches = await stack.runtime.db.ledger.verify()
    assert checked >= 1
    assert mismatches == []

"""Operator pages: accounts and search, credit with a reason, tier, suspension, upstream
health, platform usage; and customers kept out of them."""

from __future__ import annotations

import openai
import pytest

from tests.dashboard.conftest import customer_with_password, make_operator
from tests.dashboard.support import Browserless, logged, sign_in
from tests.support.harness import Stack


@pytest.fixture
async def operator(stack: Stack, dash: Browserless) -> str:
    account = await make_operator(stack)
    await sign_in(dash, "ops@example.com")
    return account.id


async def test_customers_are_kept_out(stack: Stack, dash: Browserless) -> None:
    customer = await customer_with_password(stack, "a@example.com")
    await sign_in(dash, "a@example.com")
    for path in (
        "/dashboard/operator/accounts",
        f"/dashboard/operator/accounts/{customer.id}",
        "/dashboard/operator/upstreams",
        "/dashboard/operator/usage",
    ):
        page = await dash.get(path)
        assert page.status == 403, path
        assert page.has("Operators only"), path
    await dash.get("/dashboard/keys")
    page = await dash.post(
        f"/dashboard/operator/accounts/{customer.id}/credit",
        {"kind": "grant", "amount": "1000", "reason": "free money"},
    )
    assert page.status == 403
    assert (await stack.runtime.db.ledger.entries(customer.id, kinds=("grant",)))[0][
        "amount"
    ] == 10_000_000


async def test_search(stack: Stack, dash: Browserless, operator: str) -> None:
    await stack.account(email="alice@example.com")
    await stack.account(email="bob@example.org")
    page = await dash.get("/dashboard/operator/accounts?q=alice")
    assert page.has("alice@example.com")
    assert not page.has("bob@example.org")
    page = await dash.get(
        "/dashboard/operator/accounts?q=example.org", headers={"HX-Request": "true"}
    )
    assert page.text.startswith('<div id="account-results"')
    assert page.has("bob@example.org")
    page = await dash.get("/dashboard/operator/accounts")
    assert page.has("alice@example.com")
    assert page.has("bob@example.org")


async def test_credit_with_a_reason(stack: Stack, dash: Browserless, operator: str) -> None:
    customer = await stack.account(usd=None, email="c@example.com")
    path = f"/dashboard/operator/accounts/{customer.id}"
    await dash.get(path)
    bad = [
        ({"kind": "grant", "amount": "ten", "reason": "x"}, "Enter an amount in USD"),
        ({"kind": "grant", "amount": "-5", "reason": "x"}, "Enter an amount in USD"),
        ({"kind": "grant", "amount": "0", "reason": "x"}, "must not be zero"),
        ({"kind": "grant", "amount": "5", "reason": "  "}, "Say why"),
        ({"kind": "adjust", "amount": "-1.5", "reason": ""}, "Say why"),
        ({"kind": "steal", "amount": "5", "reason": "x"}, "Choose grant or adjustment"),
        ({"kind": "grant", "amount": "0.0000001", "reason": "x"}, "Enter an amount in USD"),
        ({"kind": "grant", "amount": "99999999", "reason": "x"}, "too large"),
    ]
    for form, message in bad:
        page = await dash.post(path + "/credit", form)
        assert page.status == 400, (form, page.errors)
        assert any(message in e for e in page.errors), (form, page.errors)
    assert await stack.runtime.db.ledger.entries(customer.id) == []
    page = await dash.post(
        path + "/credit", {"kind": "grant", "amount": "$25", "reason": "welcome"}
    )
    assert page.url.endswith("?notice=credit_done")
    assert page.has("$25.00")
    page = await dash.post(
        path + "/credit", {"kind": "adjust", "amount": "-2.50", "reason": "typo"}
    )
    entries = await stack.runtime.db.ledger.entries(customer.id)
    assert [(e["kind"], e["amount"], e["reason"]) for e in entries] == [
        ("adjustment", -2_500_000, "typo"),
        ("grant", 25_000_000, "welcome"),
    ]
    assert entries[0]["actor"] == f"operator:{operator}"
    assert page.has("$22.50")


async def test_tier_change(stack: Stack, dash: Browserless, operator: str) -> None:
    customer = await stack.account(email="c@example.com", tier="free")
    path = f"/dashboard/operator/accounts/{customer.id}"
    await dash.get(path)
    page = await dash.post(path + "/tier", {"tier": "platinum"})
    assert page.status == 400
    assert any("Choose one of the tiers" in e for e in page.errors)
    page = await dash.post(path + "/tier", {"tier": "enterprise"})
    assert page.url.endswith("notice=tier_done")
    assert (await stack.runtime.db.accounts.get(customer.id)).tier == "enterprise"  # type: ignore[union-attr]


async def test_suspension_stops_the_keys(stack: Stack, dash: Browserless, operator: str) -> None:
    customer = await stack.account(email="c@example.com")
    client = stack.client(await stack.key(customer.id))
    assert (await client.models.list()).data
    path = f"/dashboard/operator/accounts/{customer.id}"
    await dash.get(path)
    page = await dash.post(path + "/status", {"action": "suspend"})  # not confirmed
    assert page.status == 400
    assert any("Tick the box" in e for e in page.errors)
    assert (await client.models.list()).data
    page = await dash.post(path + "/status", {"action": "suspend", "confirm": "yes"})
    assert page.url.endswith("notice=status_done")
    assert page.has("suspended")
    with pytest.raises(openai.AuthenticationError):
        await client.models.list()
    await dash.post(path + "/status", {"action": "resume"})
    assert (await client.models.list()).data
    page = await dash.post(
        f"/dashboard/operator/accounts/{operator}/status", {"action": "suspend", "confirm": "yes"}
    )
    assert page.status == 400
    assert any("your own account" in e for e in page.errors)


async def test_operator_revokes_a_customers_key(
    stack: Stack, dash: Browserless, operator: str
) -> None:
    customer = await stack.account(email="c@example.com")
    client = stack.client(await stack.key(customer.id, "leaked"))
    (key,) = await stack.runtime.db.keys.list_for(customer.id)
    page = await dash.get(f"/dashboard/keys/{key.id}/revoke")
    assert page.has("leaked")
    page = await dash.post(f"/dashboard/keys/{key.id}/revoke")
    assert page.url.endswith(f"/operator/accounts/{customer.id}?notice=key_revoked")
    with pytest.raises(openai.AuthenticationError):
        await client.models.list()


async def test_upstreams_and_platform_usage(stack: Stack, dash: Browserless, operator: str) -> None:
    customer = await stack.account(email="c@example.com")
    await stack.client(await stack.key(customer.id)).chat.completions.create(
        model="gpt-oss-120b", messages=[{"role": "user", "content": "x"}], max_tokens=3
    )
    await logged(stack, 1)
    page = await dash.get("/dashboard/operator/upstreams")
    assert page.has("simulator")
    assert page.has("riva-simulator")
    assert page.has("gpt-oss-120b")
    assert page.has("healthy")
    assert page.has("no traffic")
    page = await dash.get("/dashboard/operator/usage")
    assert page.status == 200
    assert page.has("gpt-oss-120b")
    assert page.has(customer.id)
    page = await dash.get("/dashboard/operator/usage?by=account")
    assert page.has("c@example.com")
    assert page.text.count('<svg class="chart"') == 2

"""The keys page: create (shown once), list, revoke with confirmation, spend caps; a key
revoked from the dashboard is refused by the API at once."""

from __future__ import annotations

import re

import openai
import pytest

from tests.dashboard.conftest import customer_with_password
from tests.dashboard.support import Browserless, sign_in
from tests.support.harness import Stack


def _secret(page_text: str) -> str:
    match = re.search(r'value="(qbt_[0-9A-Za-z]{38})"', page_text)
    assert match, "no key on the page"
    return match[1]


@pytest.fixture
async def customer(stack: Stack, dash: Browserless) -> str:
    account = await customer_with_password(stack, "a@example.com")
    await sign_in(dash, "a@example.com")
    await dash.get("/dashboard/keys")
    return account.id


async def test_create_list_and_revoke(stack: Stack, dash: Browserless, customer: str) -> None:
    page = await dash.post("/dashboard/keys", {"label": "prod-api-worker"})
    assert page.status == 200
    assert page.has("you will not see this key again")
    assert page.headers["Cache-Control"] == "no-store"
    secret = _secret(page.text)
    client = stack.client(secret)
    assert (await client.models.list()).data
    page = await dash.get("/dashboard/keys")
    assert page.has("prod-api-worker")
    assert page.has(secret[:12] + "…")
    assert secret not in page.text  # listed by prefix only, never again in full
    (key,) = await stack.runtime.db.keys.list_for(customer)
    page = await dash.get(f"/dashboard/keys/{key.id}/revoke")
    assert page.has("Revoke the key “prod-api-worker”?")
    page = await dash.post(f"/dashboard/keys/{key.id}/revoke")
    assert page.url.endswith("/dashboard/keys?notice=key_revoked")
    assert page.has("revoked")
    with pytest.raises(openai.AuthenticationError):
        await client.models.list()
    (event,) = await stack.runtime.db.audit.list(action="key.revoke")
    assert event["actor"] == f"account:{customer}"


async def test_bad_labels(stack: Stack, dash: Browserless, customer: str) -> None:
    for label, message in (("", "Give the key a label"), ("x" * 201, "at most 200")):
        page = await dash.post("/dashboard/keys", {"label": label})
        assert page.status == 400
        assert any(message in e for e in page.errors)
    assert await stack.runtime.db.keys.list_for(customer) == []


async def test_another_accounts_key_is_not_found(
    stack: Stack, dash: Browserless, customer: str
) -> None:
    victim = await stack.account(email="victim@example.com")
    secret = await stack.key(victim.id, "theirs")
    (key,) = await stack.runtime.db.keys.list_for(victim.id)
    assert (await dash.get(f"/dashboard/keys/{key.id}/revoke")).status == 404
    assert (await dash.post(f"/dashboard/keys/{key.id}/revoke")).status == 404
    page = await dash.post(f"/dashboard/keys/{key.id}/cap", {"monthly_spend_cap": "1"})
    assert page.status == 404
    assert (await stack.runtime.db.keys.get(key.id)).is_active  # type: ignore[union-attr]
    assert (await stack.client(secret).models.list()).data


async def test_monthly_spend_cap(stack: Stack, dash: Browserless, customer: str) -> None:
    page = await dash.post("/dashboard/keys", {"label": "capped"})
    secret = _secret(page.text)
    (key,) = await stack.runtime.db.keys.list_for(customer)
    await dash.get("/dashboard/keys")
    for bad in ("ten dollars", "-5", "0", "0.0000001"):
        page = await dash.post(f"/dashboard/keys/{key.id}/cap", {"monthly_spend_cap": bad})
        assert page.status == 400, bad
        assert page.errors, bad
        assert page.has(f'value="{bad}"')  # what was typed stays in the field
    assert (await stack.runtime.db.keys.get(key.id)).monthly_spend_cap is None  # type: ignore[union-attr]
    page = await dash.post(f"/dashboard/keys/{key.id}/cap", {"monthly_spend_cap": "$0.000001"})
    assert page.has("The spend cap is saved")
    assert (await stack.runtime.db.keys.get(key.id)).monthly_spend_cap == 1  # type: ignore[union-attr]
    client = stack.client(secret)
    with pytest.raises(openai.APIStatusError) as refused:
        await client.chat.completions.create(
            model="gpt-oss-20b", messages=[{"role": "user", "content": "hi"}], max_tokens=4
        )
    assert refused.value.status_code == 402
    assert refused.value.body["code"] == "spend_cap_exceeded"  # type: ignore[index]
    page = await dash.post(f"/dashboard/keys/{key.id}/cap", {"monthly_spend_cap": ""})
    assert (await stack.runtime.db.keys.get(key.id)).monthly_spend_cap is None  # type: ignore[union-attr]
    await client.chat.completions.create(
        model="gpt-oss-20b", messages=[{"role": "user", "content": "hi"}], max_tokens=4
    )

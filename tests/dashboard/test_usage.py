"""Balance, limits, usage charts, recent requests and the CSV export."""

from __future__ import annotations

import csv
import io

from tests.dashboard.conftest import customer_with_password
from tests.dashboard.support import Browserless, logged, sign_in
from tests.support.harness import Stack


async def test_usage_after_calls(stack: Stack, dash: Browserless) -> None:
    account = await customer_with_password(stack, "a@example.com", usd="5")
    key = await stack.key(account.id, "=cmd|' /C calc'!A0")  # a label that looks like a formula
    other_key = await stack.key(account.id, "batch")
    for secret, model in ((key, "gpt-oss-120b"), (other_key, "gpt-oss-20b"), (key, "gpt-oss-20b")):
        await stack.client(secret).chat.completions.create(
            model=model, messages=[{"role": "user", "content": "Hello"}], max_tokens=5
        )
    await stack.client(key).embeddings.create(model="bge-m3", input="hello")
    await logged(stack, 4)
    await sign_in(dash, "a@example.com")
    page = await dash.get("/dashboard/")
    assert page.has("pro")
    assert page.has("600")
    assert page.has("32")
    assert page.has("Held by requests in flight")
    balance = (await stack.runtime.db.accounts.get(account.id)).balance  # type: ignore[union-attr]
    assert balance < 5_000_000
    page = await dash.get("/dashboard/usage")
    assert page.status == 200
    assert page.text.count('<svg class="chart"') == 2
    assert page.has("Spend per day by model")
    assert page.has("gpt-oss-120b")
    assert page.has("bge-m3")
    assert page.has("embeddings")
    assert page.has("5 in / 5 out tokens") or page.has("out tokens")
    page = await dash.get("/dashboard/usage?by=key&days=7", headers={"HX-Request": "true"})
    assert page.text.startswith('<div id="usage-charts"')
    assert page.has("batch")
    assert "<html" not in page.text  # a fragment for htmx
    page = await dash.get("/dashboard/usage.csv?days=7")
    assert page.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(page.text)))
    assert len(rows) == 4
    assert {r["model"] for r in rows} == {"gpt-oss-120b", "gpt-oss-20b", "bge-m3"}
    assert all(r["key_label"] in ("'=cmd|' /C calc'!A0", "batch") for r in rows)
    spent = sum(round(float(r["cost_usd"]) * 1_000_000) for r in rows)
    assert spent == 5_000_000 - balance


async def test_usage_is_per_account(stack: Stack, dash: Browserless) -> None:
    mine = await customer_with_password(stack, "a@example.com")
    theirs = await stack.account(email="b@example.com")
    await stack.client(await stack.key(theirs.id, "their-secret-label")).chat.completions.create(
        model="gpt-oss-20b", messages=[{"role": "user", "content": "x"}], max_tokens=3
    )
    await logged(stack, 1)
    await sign_in(dash, "a@example.com")
    for path in ("/dashboard/usage", "/dashboard/usage?by=key", "/dashboard/usage.csv"):
        page = await dash.get(path)
        assert not page.has("their-secret-label"), path
        assert not page.has(theirs.id), path
    assert mine.id

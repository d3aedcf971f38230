"""Two weeks of made-up traffic for one account, for the documentation's screenshots only:
charges and request-log rows written through the same settlement writer as real requests
(backdated), after a grant that covers them, so the ledger still reconciles."""

from __future__ import annotations

import json
import random
import secrets

from bastion.core.calendar import now_ms
from bastion.core.records import Charge, RequestLogEntry
from tests.support.harness import Stack

DAY_MS = 86_400_000
MODELS = {
    "gpt-oss-120b": ("chat", 900),
    "Qwen3-32B": ("chat", 400),
    "bge-m3": ("embeddings", 20),
    "stable-diffusion-xl-base-v10": ("images", 3000),
}


async def seed_usage(stack: Stack, account_id: str, days: int = 14) -> None:
    runtime = stack.runtime
    keys = [k for k in await runtime.db.keys.list_for(account_id) if k.is_active]
    if len(keys) < 2:
        await runtime.keys.create(account_id, "ci-runner", actor="demo")
        keys = [k for k in await runtime.db.keys.list_for(account_id) if k.is_active]
    await runtime.credits.grant(account_id, 40_000_000, actor="demo", reason="demo traffic")
    rng = random.Random(6)
    now = now_ms()
    for day in range(days, 0, -1):
        for _ in range(rng.randint(6, 16)):
            model = rng.choice(list(MODELS))
            endpoint, unit_cost = MODELS[model]
            key = rng.choice(keys)
            at = now - day * DAY_MS + rng.randint(0, DAY_MS // 2)
            request_id = "req_demo" + secrets.token_hex(8)
            tokens = rng.randint(200, 2400)
            cost = unit_cost * tokens // 100
            ok = rng.random() > 0.06
            if endpoint == "images":
                images = rng.randint(1, 4)
                cost = 3000 * images
                usage = json.dumps({"source": "upstream", "images": images})
            else:
                usage = json.dumps(
                    {"source": "upstream", "input_tokens": tokens, "output_tokens": tokens // 3}
                )
            if ok:
                await runtime.db.settlements.charge(
                    Charge(request_id, account_id, key.id, cost, model, endpoint, usage, at)
                )
            runtime.db.settlements.log(
                RequestLogEntry(
                    request_id,
                    account_id,
                    key.id,
                    model,
                    endpoint,
                    200 if ok else 502,
                    usage if ok else None,
                    cost if ok else 0,
                    300,
                    at,
                )
            )
    await runtime.db.settlements.flush()

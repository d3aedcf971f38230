"""Per-character metering: a hold of the text's price, then the same charge in the ledger."""

from __future__ import annotations

import pytest

from tests.support.harness import Stack
from tests.tts.support import charges, holds_released, price_of, speech, tts


@pytest.mark.parametrize(
    "text",
    [
        "Hello from Bastion.",
        "Grüße aus Köln 👋",  # 16 code points: é, ü and the emoji count one each
    ],
)
async def test_the_charge_is_characters_times_the_price(stack: Stack, text: str) -> None:
    account_id, key = await stack.account_and_key()
    before = await stack.runtime.db.ledger.funds(account_id)
    reply = await tts(
        stack, key, speech(text=text, language_code="de-DE", voice_name="German-DE.Female-1")
    )
    assert reply.status == 200
    [charge] = await charges(stack, account_id)
    expected = price_of(stack, "tts-de-de", len(text))
    assert expected == len(text) * 15  # $15 per million characters = 15 micro-USD each
    assert -charge["amount"] == expected
    assert charge["usage"] == {"source": "gateway", "characters": len(text)}
    assert charge["request_id"] == reply.headers["x-request-id"]
    after = await stack.runtime.db.ledger.funds(account_id)
    assert before is not None
    assert after is not None
    assert before.balance - after.balance == expected
    assert await holds_released(stack, account_id)


async def test_every_success_is_charged_once(stack: Stack) -> None:
    account_id, key = await stack.account_and_key()
    texts = ["One.", "Two two.", "Three three three."]
    for text in texts:
        assert (await tts(stack, key, speech(text=text))).status == 200
    found = await charges(stack, account_id)
    assert sorted(-c["amount"] for c in found) == sorted(
        price_of(stack, "tts-en-us", len(t)) for t in texts
    )

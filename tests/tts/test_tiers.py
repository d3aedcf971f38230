"""A tier that may not use a language's model does not see that language."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.simulator.riva import RivaSimulator
from tests.support.harness import Stack
from tests.tts.support import speech, tts


@pytest.fixture
def config() -> dict[str, Any]:
    return {"tiers": {"free": {"models": ["gpt-oss-20b", "tts-en-us"]}}}


async def test_languages_outside_the_tier_are_unsupported(
    stack: Stack, riva: RivaSimulator
) -> None:
    _, key = await stack.account_and_key(tier="free")
    reply = await tts(stack, key, speech(language_code="de-DE", voice_name="German-DE.Male-1"))
    assert reply.status == 400
    message = reply.error()["message"]
    assert "Unsupported 'language_code': 'de-DE'" in message
    assert message.endswith("Supported languages: en-US.")
    assert not riva.journal
    assert (await tts(stack, key, speech())).status == 200

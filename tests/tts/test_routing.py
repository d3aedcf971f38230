"""Routing by language_code to that language's model and its Riva deployments."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from bastion.simulator.riva import RivaOptions, RivaSimulator, start_riva
from tests.support.harness import Stack
from tests.tts.support import MODELS, VOICES, charges, price_of, speech, tts


@pytest.fixture
async def riva_backup() -> AsyncIterator[RivaSimulator]:
    simulator = await start_riva("127.0.0.1", 0, RivaOptions(voice="tones", strict_voices=False))
    yield simulator
    await simulator.stop(None)


@pytest.fixture
def config(riva_backup: RivaSimulator) -> dict[str, Any]:
    return {
        "upstreams": {
            "riva-backup": {"base_url": riva_backup.url},
        },
        "models": {
            # an operator-added language, on a server that knows it
            "tts-fr-fr": {
                "category": "tts",
                "language_code": "fr-FR",
                "price": {"per_mchar": "20"},
                "deployments": [{"upstream": "riva-backup"}],
            },
            # en-US on two servers: the first is nearly always tried first
            "tts-en-us": {
                "deployments": [
                    {"upstream": "riva-simulator", "weight": 1000},
                    {"upstream": "riva-backup", "weight": 1},
                ]
            },
        },
    }


@pytest.mark.parametrize("language", ["de-DE", "es-ES", "it-IT"])
async def test_each_language_goes_to_its_model(
    stack: Stack, riva: RivaSimulator, language: str
) -> None:
    account_id, key = await stack.account_and_key()
    text = f"Text in {language}"
    reply = await tts(
        stack, key, speech(text=text, language_code=language, voice_name=VOICES[language])
    )
    assert reply.status == 200
    [call] = riva.journal
    assert call["method"] == "Synthesize"
    assert call["language_code"] == language
    assert call["voice_name"] == VOICES[language]
    assert call["characters"] == len(text)
    [charge] = await charges(stack, account_id)
    assert charge["model"] == MODELS[language]
    assert charge["endpoint"] == "tts"


async def test_language_codes_ignore_case(stack: Stack, riva: RivaSimulator) -> None:
    _, key = await stack.account_and_key()
    reply = await tts(stack, key, speech(language_code="de-de", voice_name=VOICES["de-DE"]))
    assert reply.status == 200
    assert riva.journal[-1]["language_code"] == "de-DE"  # forwarded as configured


async def test_an_operator_added_language_is_routed(
    stack: Stack, riva: RivaSimulator, riva_backup: RivaSimulator
) -> None:
    account_id, key = await stack.account_and_key()
    reply = await tts(stack, key, speech(text="Bonjour", language_code="fr-FR", voice_name="Fr.1"))
    assert reply.status == 200
    assert [c["language_code"] for c in riva_backup.journal] == ["fr-FR"]
    assert not riva.journal
    [charge] = await charges(stack, account_id)
    assert charge["model"] == "tts-fr-fr"
    assert -charge["amount"] == price_of(stack, "tts-fr-fr", len("Bonjour"))


async def test_failover_to_the_next_deployment_before_any_audio(
    stack: Stack, riva: RivaSimulator, riva_backup: RivaSimulator
) -> None:
    riva.options.fault = "error"
    riva.options.fault_status = "UNAVAILABLE"
    account_id, key = await stack.account_and_key()
    for _ in range(3):
        reply = await tts(stack, key, speech())
        assert reply.status == 200
        assert reply.content_type == "audio/pcm"
    assert len(riva_backup.journal) == 3
    assert [c["status"] for c in riva_backup.journal] == ["OK"] * 3
    assert riva.journal  # the failing deployment was tried, and passed over
    assert len(await charges(stack, account_id)) == 3  # each request charged once


async def test_tts_models_are_listed(stack: Stack) -> None:
    _, key = await stack.account_and_key()
    models = await stack.client(key).models.list()
    ids = {m.id for m in models.data}
    assert set(MODELS.values()) | {"tts-fr-fr"} <= ids

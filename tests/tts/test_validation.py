"""Every field is checked before anything is held or sent: precise 400s, nothing charged."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.simulator.riva import RivaSimulator
from tests.support.harness import Stack
from tests.tts.support import charges, speech, tts

FIELDS = ("text", "language_code", "encoding", "sample_rate_hz", "voice_name")


@pytest.fixture
def config() -> dict[str, Any]:
    return {"listener": {"max_tts_text_chars": 20}}


async def refused(stack: Stack, body: Any, riva: RivaSimulator, **kwargs: Any) -> str:
    account_id, key = await stack.account_and_key()
    reply = await tts(stack, key, body, **kwargs)
    assert reply.status == 400, reply.body
    error = reply.error()
    assert error["code"] == "invalid_request"
    assert error["type"] == "invalid_request_error"
    assert "x-request-id" in reply.headers
    assert not riva.journal  # nothing reached the upstream
    assert await charges(stack, account_id) == []
    return error["message"]


@pytest.mark.parametrize("field", FIELDS)
async def test_each_missing_field_is_named(stack: Stack, riva: RivaSimulator, field: str) -> None:
    body = speech()
    del body[field]
    message = await refused(stack, body, riva)
    assert message.startswith(f"Missing required parameter: '{field}'")


@pytest.mark.parametrize("field", FIELDS)
async def test_null_counts_as_missing(stack: Stack, riva: RivaSimulator, field: str) -> None:
    message = await refused(stack, speech(**{field: None}), riva)
    assert f"'{field}'" in message


@pytest.mark.parametrize(
    ("field", "value", "expected", "got"),
    [
        ("text", 42, "a string", "an integer"),
        ("text", ["Hello"], "a string", "an array"),
        ("language_code", True, "a string", "a boolean"),
        ("encoding", "LINEAR_PCM", "an integer", "a string"),
        ("encoding", True, "an integer", "a boolean"),  # booleans are not numbers
        ("encoding", 1.0, "an integer", "a number"),
        ("sample_rate_hz", "22050", "an integer", "a string"),
        ("sample_rate_hz", False, "an integer", "a boolean"),
        ("sample_rate_hz", 22050.5, "an integer", "a number"),
        ("voice_name", {"name": "x"}, "a string", "an object"),
    ],
)
async def test_wrong_types_are_named(
    stack: Stack, riva: RivaSimulator, field: str, value: Any, expected: str, got: str
) -> None:
    message = await refused(stack, speech(**{field: value}), riva)
    assert message.startswith(f"Invalid type for '{field}': expected {expected}")
    assert f"but got {got} instead" in message


async def test_unsupported_language_lists_the_configured_ones(
    stack: Stack, riva: RivaSimulator
) -> None:
    message = await refused(stack, speech(language_code="fr-FR"), riva)
    assert "Unsupported 'language_code': 'fr-FR'" in message
    assert "de-DE, en-US, es-ES, it-IT" in message


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"text": ""}, "Invalid 'text': empty string"),
        ({"text": " \n\t "}, "only whitespace"),
        ({"text": "x" * 21}, "21 characters is over the limit of 20 characters"),
        ({"encoding": 0}, "Unsupported 'encoding': 0"),
        ({"encoding": 5}, "1 LINEAR_PCM, 2 FLAC, 3 MULAW, 4 OGGOPUS, 20 ALAW"),
        ({"sample_rate_hz": 0}, "Use a rate from 8000 to 48000 Hz"),
        ({"sample_rate_hz": 7999}, "Unsupported 'sample_rate_hz': 7999"),
        ({"sample_rate_hz": 96000}, "Unsupported 'sample_rate_hz': 96000"),
        ({"encoding": 4, "sample_rate_hz": 22050}, "for OGGOPUS: 22050"),
        ({"voice_name": ""}, "Invalid 'voice_name': empty string"),
        ({"voice_name": "v" * 300}, "Invalid 'voice_name': longer than 256 characters"),
        ({"voice_name": "  "}, "Invalid 'voice_name': it has only whitespace"),
    ],
)
async def test_unsupported_values_are_explained(
    stack: Stack, riva: RivaSimulator, changes: dict[str, Any], fragment: str
) -> None:
    message = await refused(stack, speech(**changes), riva)
    assert fragment in message


async def test_the_limit_counts_code_points_not_bytes(stack: Stack, riva: RivaSimulator) -> None:
    _, key = await stack.account_and_key()
    reply = await tts(stack, key, speech(text="é" * 20))  # 40 bytes of UTF-8, 20 characters
    assert reply.status == 200


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"", "empty"),
        (b"{not json", "not valid JSON"),
        (b'["text"]', "must be a JSON object"),
    ],
)
async def test_a_body_that_is_not_a_json_object(
    stack: Stack, riva: RivaSimulator, raw: bytes, fragment: str
) -> None:
    message = await refused(stack, None, riva, raw=raw)
    assert fragment in message


async def test_a_key_is_needed_before_anything_else(stack: Stack, riva: RivaSimulator) -> None:
    for key in (None, "qbt_not_a_real_key"):
        reply = await tts(stack, key, {"text": ""})
        assert reply.status == 401
        assert reply.error()["code"] == "invalid_api_key"
    assert not riva.journal


async def test_other_methods_are_not_allowed(stack: Stack) -> None:
    _, key = await stack.account_and_key()
    async with stack.http.get(
        f"{stack.url}/api/v1/tts/text_to_audio", headers={"Authorization": f"Bearer {key}"}
    ) as response:
        assert response.status == 405

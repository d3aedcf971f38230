"""The schema helper itself: it must reject what it should, or the other tests prove nothing."""

from __future__ import annotations

import jsonschema
import pytest

from .schemas import validate


def test_rejects_a_wrong_object() -> None:
    with pytest.raises(jsonschema.ValidationError):
        validate(
            {"id": "x", "object": "chat.completion", "created": 1}, "CreateChatCompletionResponse"
        )
    with pytest.raises(jsonschema.ValidationError):
        validate({"object": "list", "data": [{"id": "m"}]}, "ListModelsResponse")


def test_nullable_fields_accept_null() -> None:
    chunk = {
        "id": "x",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [
            {"index": 0, "delta": {"content": "a"}, "logprobs": None, "finish_reason": None}
        ],
        "usage": None,
    }
    validate(chunk, "CreateChatCompletionStreamResponse")

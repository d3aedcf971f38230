"""Request validation: required fields and their types, nothing more (the rest passes through)."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.core.catalog import Endpoint
from bastion.errors import InvalidRequestError
from bastion.gateway.validation import parse_object, validate, wants_stream, wants_usage_chunk

MSG = [{"role": "user", "content": "hi"}]

VALID: list[tuple[Endpoint, dict[str, Any]]] = [
    (Endpoint.CHAT, {"model": "m", "messages": MSG}),
    (
        Endpoint.CHAT,
        {
            "model": "m",
            "messages": [
                {"role": "system", "content": "be brief"},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}},
                    ],
                },
                {"role": "assistant", "content": None, "tool_calls": []},
                {"role": "tool", "content": "42", "tool_call_id": "c1"},
            ],
            "max_tokens": 10,
            "max_completion_tokens": 5,
            "n": 2,
            "stream": True,
            "stream_options": {"include_usage": True},
            "tools": [],
            "x_anything": {"goes": "through"},
            "temperature": "not checked: the upstream decides",
        },
    ),
    (Endpoint.CHAT, {"model": "m", "messages": MSG, "max_tokens": None, "stream": None}),
    (Endpoint.COMPLETIONS, {"model": "m", "prompt": "once"}),
    (Endpoint.COMPLETIONS, {"model": "m", "prompt": ["a", "b"]}),
    (Endpoint.COMPLETIONS, {"model": "m", "prompt": [1, 2, 3]}),
    (Endpoint.COMPLETIONS, {"model": "m", "prompt": [[1, 2], [3]]}),
    (Endpoint.COMPLETIONS, {"model": "m", "prompt": "", "max_tokens": 1, "stream": False}),
    (Endpoint.RESPONSES, {"model": "m", "input": "hi"}),
    (Endpoint.RESPONSES, {"model": "m", "input": [{"role": "user", "content": "hi"}]}),
    (Endpoint.RESPONSES, {"model": "m", "input": "hi", "max_output_tokens": 3, "stream": True}),
    (Endpoint.EMBEDDINGS, {"model": "m", "input": "x"}),
    (Endpoint.EMBEDDINGS, {"model": "m", "input": ["x", "y"]}),
    (Endpoint.EMBEDDINGS, {"model": "m", "input": [1, 2]}),
    (Endpoint.EMBEDDINGS, {"model": "m", "input": [[1], [2, 3]]}),
    (Endpoint.IMAGES, {"model": "m", "prompt": "a cat"}),
    (
        Endpoint.IMAGES,
        {
            "model": "m",
            "prompt": "a cat",
            "n": 2,
            "size": "512x512",
            "quality": "hd",
            "response_format": "url",
        },
    ),
]


@pytest.mark.parametrize(("endpoint", "payload"), VALID)
def test_valid_bodies(endpoint: Endpoint, payload: dict[str, Any]) -> None:
    assert validate(endpoint, payload) == "m"


INVALID: list[tuple[Endpoint, dict[str, Any], str]] = [
    (Endpoint.CHAT, {"messages": MSG}, "Missing required parameter: 'model'"),
    (Endpoint.CHAT, {"model": None, "messages": MSG}, "Missing required parameter: 'model'"),
    (Endpoint.CHAT, {"model": 3, "messages": MSG}, "Invalid type for 'model'"),
    (Endpoint.CHAT, {"model": "", "messages": MSG}, "'model': empty"),
    (Endpoint.CHAT, {"model": "m"}, "Missing required parameter: 'messages'"),
    (Endpoint.CHAT, {"model": "m", "messages": {}}, "Invalid type for 'messages'"),
    (Endpoint.CHAT, {"model": "m", "messages": []}, "empty array"),
    (Endpoint.CHAT, {"model": "m", "messages": [1]}, "messages[0]"),
    (Endpoint.CHAT, {"model": "m", "messages": [{"content": "x"}]}, "messages[0].role"),
    (Endpoint.CHAT, {"model": "m", "messages": MSG, "max_tokens": "10"}, "'max_tokens'"),
    (Endpoint.CHAT, {"model": "m", "messages": MSG, "max_tokens": True}, "'max_tokens'"),
    (Endpoint.CHAT, {"model": "m", "messages": MSG, "max_tokens": 0}, "at least 1"),
    (Endpoint.CHAT, {"model": "m", "messages": MSG, "n": 129}, "between 1 and 128"),
    (Endpoint.CHAT, {"model": "m", "messages": MSG, "stream": "yes"}, "'stream'"),
    (Endpoint.CHAT, {"model": "m", "messages": MSG, "stream_options": []}, "'stream_options'"),
    (
        Endpoint.CHAT,
        {"model": "m", "messages": MSG, "stream_options": {"include_usage": "yes"}},
        "'include_usage'",
    ),
    (Endpoint.COMPLETIONS, {"model": "m"}, "'prompt'"),
    (Endpoint.COMPLETIONS, {"model": "m", "prompt": []}, "'prompt'"),
    (Endpoint.COMPLETIONS, {"model": "m", "prompt": [None]}, "'prompt'"),
    (Endpoint.COMPLETIONS, {"model": "m", "prompt": 5}, "'prompt'"),
    (Endpoint.RESPONSES, {"model": "m"}, "'input'"),
    (Endpoint.RESPONSES, {"model": "m", "input": {"x": 1}}, "'input'"),
    (
        Endpoint.RESPONSES,
        {"model": "m", "input": "x", "max_output_tokens": -1},
        "'max_output_tokens'",
    ),
    (Endpoint.EMBEDDINGS, {"model": "m"}, "'input'"),
    (Endpoint.EMBEDDINGS, {"model": "m", "input": ""}, "'input'"),
    (Endpoint.EMBEDDINGS, {"model": "m", "input": [""] * 0}, "'input'"),
    (Endpoint.EMBEDDINGS, {"model": "m", "input": [True]}, "'input'"),
    (Endpoint.IMAGES, {"model": "m"}, "'prompt'"),
    (Endpoint.IMAGES, {"model": "m", "prompt": "x", "n": 11}, "'n'"),
    (Endpoint.IMAGES, {"model": "m", "prompt": "x", "size": [512]}, "'size'"),
    (Endpoint.IMAGES, {"model": "m", "prompt": "x", "response_format": "png"}, "'response_format'"),
]


@pytest.mark.parametrize(("endpoint", "payload", "says"), INVALID)
def test_invalid_bodies(endpoint: Endpoint, payload: dict[str, Any], says: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        validate(endpoint, payload)
    assert says in caught.value.message
    assert caught.value.status == 400
    assert caught.value.code == "invalid_request"


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"", "empty"),
        (b"{", "not valid JSON"),
        (b"\xff", "not valid JSON"),
        (b"[]", "an array"),
        (b"null", "null"),
        (b"1.5", "a number"),
        (b'"s"', "a string"),
    ],
)
def test_parse_object_refuses(body: bytes, says: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_object(body)
    assert says in caught.value.message


def test_parse_object() -> None:
    assert parse_object(b'{"model": "m", "x": [1]}') == {"model": "m", "x": [1]}


def test_wants_stream_only_where_streams_exist() -> None:
    assert wants_stream(Endpoint.CHAT, {"stream": True})
    assert wants_stream(Endpoint.RESPONSES, {"stream": True})
    assert not wants_stream(Endpoint.CHAT, {"stream": False})
    assert not wants_stream(Endpoint.CHAT, {})
    assert not wants_stream(Endpoint.EMBEDDINGS, {"stream": True})


def test_wants_usage_chunk() -> None:
    assert wants_usage_chunk({"stream_options": {"include_usage": True}})
    assert not wants_usage_chunk({"stream_options": {"include_usage": False}})
    assert not wants_usage_chunk({"stream_options": {}})
    assert not wants_usage_chunk({})

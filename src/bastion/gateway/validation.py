"""Request validation for the JSON endpoints: required fields and their types, no more.

Bastion forwards bodies unchanged, so it checks only what it relies on itself (the model, the
fields that size the hold, the switch between JSON and a stream) and what every upstream
would reject anyway.  Unknown fields pass through untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from bastion.core.catalog import Endpoint
from bastion.errors import InvalidRequestError

_TYPE_NAMES = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "an array",
    dict: "an object",
    type(None): "null",
}


def _kind(value: object) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def parse_object(body: bytes) -> dict[str, Any]:
    if not body:
        raise InvalidRequestError("The request body is empty; send a JSON object.")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"The request body is not valid JSON: {exc.msg}.") from None
    if not isinstance(payload, dict):
        raise InvalidRequestError(f"The request body must be a JSON object, not {_kind(payload)}.")
    return payload


def _missing(name: str) -> InvalidRequestError:
    return InvalidRequestError(f"Missing required parameter: '{name}'.")


def _wrong(name: str, expected: str, value: object) -> InvalidRequestError:
    return InvalidRequestError(
        f"Invalid type for '{name}': expected {expected}, but got {_kind(value)} instead."
    )


def require_str(payload: Mapping[str, Any], name: str) -> str:
    if name not in payload or payload[name] is None:
        raise _missing(name)
    value = payload[name]
    if not isinstance(value, str):
        raise _wrong(name, "a string", value)
    if not value:
        raise InvalidRequestError(f"Invalid '{name}': empty string.")
    return value


def _optional_int(
    payload: Mapping[str, Any], name: str, low: int = 1, high: int | None = None
) -> None:
    value = payload.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong(name, "an integer", value)
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise InvalidRequestError(f"Invalid value for '{name}': must be {bound} (got {value}).")


def _optional_bool(payload: Mapping[str, Any], name: str) -> None:
    value = payload.get(name)
    if value is not None and not isinstance(value, bool):
        raise _wrong(name, "a boolean", value)


def _optional_object(payload: Mapping[str, Any], name: str) -> None:
    value = payload.get(name)
    if value is not None and not isinstance(value, dict):
        raise _wrong(name, "an object", value)


def _optional_str(payload: Mapping[str, Any], name: str, choices: tuple[str, ...] = ()) -> None:
    value = payload.get(name)
    if value is None:
        return
    if not isinstance(value, str):
        raise _wrong(name, "a string", value)
    if choices and value not in choices:
        listed = ", ".join(f"'{c}'" for c in choices)
        raise InvalidRequestError(f"Invalid value for '{name}': must be one of {listed}.")


def _is_token_list(value: object) -> bool:
    return isinstance(value, list) and all(
        isinstance(t, int) and not isinstance(t, bool) for t in value
    )


def _chat(payload: Mapping[str, Any]) -> None:
    messages = payload.get("messages")
    if messages is None:
        raise _missing("messages")
    if not isinstance(messages, list):
        raise _wrong("messages", "an array", messages)
    if not messages:
        raise InvalidRequestError("Invalid 'messages': empty array. Expected at least 1 message.")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _wrong(f"messages[{index}]", "an object", message)
        role = message.get("role")
        if not isinstance(role, str) or not role:
            raise InvalidRequestError(f"Missing required parameter: 'messages[{index}].role'.")
    _optional_int(payload, "max_tokens")
    _optional_int(payload, "max_completion_tokens")
    _optional_int(payload, "n", 1, 128)
    _streaming(payload)


def _streaming(payload: Mapping[str, Any]) -> None:
    _optional_bool(payload, "stream")
    _optional_object(payload, "stream_options")
    options = payload.get("stream_options")
    if isinstance(options, dict):
        _optional_bool(options, "include_usage")


def _completions(payload: Mapping[str, Any]) -> None:
    if "prompt" not in payload or payload["prompt"] is None:
        raise _missing("prompt")
    prompt = payload["prompt"]
    if not (
        isinstance(prompt, str)
        or (
            isinstance(prompt, list)
            and prompt  # no prompt at all is not a request any upstream serves
            and (
                _is_token_list(prompt)
                or all(isinstance(p, str) or _is_token_list(p) for p in prompt)
            )
        )
    ):
        raise _wrong("prompt", "a string, an array of strings or an array of tokens", prompt)
    _optional_int(payload, "max_tokens")
    _optional_int(payload, "n", 1, 128)
    _streaming(payload)


def _responses(payload: Mapping[str, Any]) -> None:
    if "input" not in payload or payload["input"] is None:
        raise _missing("input")
    value = payload["input"]
    if not isinstance(value, str | list):
        raise _wrong("input", "a string or an array", value)
    _optional_int(payload, "max_output_tokens")
    _optional_bool(payload, "stream")


def _embeddings(payload: Mapping[str, Any]) -> None:
    if "input" not in payload or payload["input"] is None:
        raise _missing("input")
    value = payload["input"]
    if isinstance(value, str):
        if not value:
            raise InvalidRequestError("Invalid 'input': empty string.")
        return
    if isinstance(value, list) and value:
        if all(isinstance(v, str) for v in value) or _is_token_list(value):
            return
        if all(_is_token_list(v) for v in value):
            return
    raise _wrong("input", "a string, a non-empty array of strings, or token arrays", value)


def _images(payload: Mapping[str, Any]) -> None:
    require_str(payload, "prompt")
    _optional_int(payload, "n", 1, 10)
    _optional_str(payload, "size")
    _optional_str(payload, "quality")
    _optional_str(payload, "response_format", ("b64_json", "url"))


VALIDATORS: Mapping[Endpoint, Callable[[Mapping[str, Any]], None]] = {
    Endpoint.CHAT: _chat,
    Endpoint.COMPLETIONS: _completions,
    Endpoint.RESPONSES: _responses,
    Endpoint.EMBEDDINGS: _embeddings,
    Endpoint.IMAGES: _images,
}


def validate(endpoint: Endpoint, payload: Mapping[str, Any]) -> str:
    """Check the body of a JSON endpoint; returns the requested model name."""
    model = require_str(payload, "model")
    VALIDATORS[endpoint](payload)
    return model


def wants_stream(endpoint: Endpoint, payload: Mapping[str, Any]) -> bool:
    return endpoint.streams and payload.get("stream") is True


def wants_usage_chunk(payload: Mapping[str, Any]) -> bool:
    options = payload.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True

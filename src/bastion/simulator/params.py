"""Typed readers for request body fields; each raises a 400 SimulatorError on a bad value."""

from __future__ import annotations

from typing import Any, TypeGuard

import orjson

from bastion.simulator.errors import invalid
from bastion.simulator.text import tokens_for_chars

# Longest completion the simulator will produce; vLLM would refuse beyond its context window too.
MAX_TOKENS_LIMIT = 131_072

Body = dict[str, Any]


def parse_body(raw: bytes) -> Body:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise invalid("request body must be a JSON object")
    return body


def model(body: Body) -> str:
    value = body.get("model")
    if not isinstance(value, str) or not value:
        raise invalid("'model' is required and must be a non-empty string", "model")
    return value


def flag(body: Body, name: str) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise invalid(f"'{name}' must be a boolean", name)
    return value


def integer(body: Body, name: str, *, lower: int, upper: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not lower <= value <= upper:
        raise invalid(f"'{name}' must be an integer between {lower} and {upper}", name)
    return value


def text(body: Body, name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(f"'{name}' must be a string", name)
    return value


def max_tokens(body: Body, *names: str, default: int) -> int:
    """The first of `names` that is set, else `default` (the simulator's option)."""
    for name in names:
        value = integer(body, name, lower=1, upper=MAX_TOKENS_LIMIT)
        if value is not None:
            return value
    return default


def stream_options(body: Body) -> tuple[bool, bool]:
    """(include_usage, continuous_usage_stats) as vLLM reads them.

    Like vLLM, per-chunk usage needs both flags: continuous_usage_stats alone does nothing.
    """
    options = body.get("stream_options")
    if options is None:
        return False, False
    if not isinstance(options, dict):
        raise invalid("'stream_options' must be an object", "stream_options")
    include = flag(options, "include_usage")
    continuous = flag(options, "continuous_usage_stats")
    return include, include and continuous


def token_ids(value: object) -> TypeGuard[list[int]]:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(item, int) and not isinstance(item, bool) for item in value)
    )


def texts_or_tokens(body: Body, name: str, *, most: int) -> list[tuple[str, int]]:
    """(seed text, token count) per item of a field that holds a string, an array of
    strings, an array of token ids, or an array of token id arrays (prompt, input)."""
    value = body.get(name)
    items: list[object]
    if isinstance(value, str) or token_ids(value):
        items = [value]
    elif isinstance(value, list) and value:
        items = value
    else:
        raise invalid(
            f"'{name}' is required: a string, an array of strings, or token id arrays", name
        )
    if len(items) > most:
        raise invalid(f"'{name}' holds at most {most} items", name)
    result: list[tuple[str, int]] = []
    for item in items:
        if isinstance(item, str):
            result.append((item, max(1, tokens_for_chars(len(item)))))
        elif token_ids(item):
            result.append((",".join(map(str, item)), len(item)))
        else:
            raise invalid(f"each item of '{name}' must be a string or token id array", name)
    return result

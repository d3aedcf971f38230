"""Worst-case usage of a request before it runs: what its credit hold is sized from.

Input tokens are bounded by the request's bytes (byte-level BPE tokenizers never produce more
tokens than UTF-8 bytes, and JSON framing only adds bytes); output tokens by the request's own
cap, or the model's configured default output cap when the request sets none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bastion.core.catalog import Endpoint, Model
from bastion.core.usage import Usage

OUTPUT_CAP_FIELDS: Mapping[Endpoint, tuple[str, ...]] = {
    Endpoint.CHAT: ("max_completion_tokens", "max_tokens"),
    Endpoint.COMPLETIONS: ("max_tokens",),
    Endpoint.RESPONSES: ("max_output_tokens",),
}


def output_cap(endpoint: Endpoint, payload: Mapping[str, Any], model: Model) -> int:
    for name in OUTPUT_CAP_FIELDS.get(endpoint, ()):
        value = payload.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return model.max_output_tokens


def choices(payload: Mapping[str, Any]) -> int:
    n = payload.get("n")
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1


def worst_case(
    endpoint: Endpoint,
    payload: Mapping[str, Any],
    body_bytes: int,
    model: Model,
    *,
    bytes_per_token: int = 1,
) -> Usage:
    """The most this request can consume, in the units its model is priced in."""
    input_tokens = -(-body_bytes // bytes_per_token)
    if endpoint in OUTPUT_CAP_FIELDS:
        if endpoint is Endpoint.COMPLETIONS:
            # a list prompt is a batch: each entry gets its own completion
            prompt = payload.get("prompt")
            batch = (
                len(prompt)
                if isinstance(prompt, list) and prompt and not isinstance(prompt[0], int)
                else 1
            )
        else:
            batch = 1
        outputs = output_cap(endpoint, payload, model) * choices(payload) * batch
        return Usage(input_tokens=input_tokens, output_tokens=outputs, source="estimate")
    if endpoint is Endpoint.EMBEDDINGS:
        return Usage(input_tokens=input_tokens, source="estimate")
    if endpoint is Endpoint.IMAGES:
        size = payload.get("size")
        quality = payload.get("quality")
        return Usage(
            images=choices(payload),
            image_size=size if isinstance(size, str) else None,
            image_quality=quality if isinstance(quality, str) else None,
            source="estimate",
        )
    raise ValueError(f"no JSON estimate for {endpoint}")


def estimated_prompt_tokens(body_bytes: int) -> int:
    """A fair guess of prompt tokens for billing when the upstream reported none
    (about four bytes per token, the usual ratio for English text and JSON)."""
    return -(-body_bytes // 4)

"""Read usage from OpenAI-shaped answers (protocol knowledge; prices live elsewhere)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bastion.core.catalog import Endpoint
from bastion.core.usage import Usage


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def token_usage(endpoint: Endpoint, usage: object) -> Usage | None:
    """Usage of a chat / completions / responses / embeddings answer, if it reports any."""
    if not isinstance(usage, Mapping):
        return None
    if endpoint is Endpoint.RESPONSES:
        return Usage(
            input_tokens=_int(usage.get("input_tokens")),
            output_tokens=_int(usage.get("output_tokens")),
        )
    prompt = _int(usage.get("prompt_tokens"))
    if endpoint is Endpoint.EMBEDDINGS:
        return Usage(input_tokens=prompt or _int(usage.get("total_tokens")))
    return Usage(input_tokens=prompt, output_tokens=_int(usage.get("completion_tokens")))


def answer_usage(endpoint: Endpoint, answer: Mapping[str, Any]) -> Usage | None:
    if endpoint is Endpoint.IMAGES:
        data = answer.get("data")
        count = len(data) if isinstance(data, list) else 0
        return Usage(images=count)
    return token_usage(endpoint, answer.get("usage"))


def output_text(endpoint: Endpoint, answer: Mapping[str, Any]) -> int:
    """Characters of generated text, for estimating when an answer reports no usage."""
    total = 0
    if endpoint is Endpoint.RESPONSES:
        for item in answer.get("output") or ():
            for part in (item.get("content") or ()) if isinstance(item, Mapping) else ():
                if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                    total += len(part["text"])
        return total
    for choice in answer.get("choices") or ():
        if not isinstance(choice, Mapping):
            continue
        message = choice.get("message")
        if isinstance(message, Mapping) and isinstance(message.get("content"), str):
            total += len(message["content"])
        if isinstance(choice.get("text"), str):
            total += len(choice["text"])
    return total

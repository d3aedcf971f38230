"""POST /v1/chat/completions: chat.completion objects and chat.completion.chunk streams."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from aiohttp import web

from bastion.simulator import params, sse
from bastion.simulator.call import Call
from bastion.simulator.errors import invalid
from bastion.simulator.generation import MAX_CHOICES, Generation, choices
from bastion.simulator.replies import json_response, new_id, now
from bastion.simulator.text import message_texts, prompt_tokens, seed_of

FINGERPRINT = "bastion-simulator"
# Mixes the request's `seed` into the prompt's; any int that JSON can carry is accepted.
_SEED_RANGE = (-(2**63), 2**64 - 1)


def completion_limit(call: Call, *names: str) -> int:
    """The smallest of the limits the request sets, else the simulator's default.

    With both max_tokens and max_completion_tokens given, the smaller one wins, so the
    output never exceeds either, whichever one a gateway uses for its estimate.
    """
    limits = [
        value
        for name in names
        if (value := params.integer(call.body, name, lower=1, upper=params.MAX_TOKENS_LIMIT))
        is not None
    ]
    return min(limits) if limits else call.options.default_max_tokens


def request_seed(body: params.Body) -> int:
    return params.integer(body, "seed", lower=_SEED_RANGE[0], upper=_SEED_RANGE[1]) or 0


async def create(call: Call) -> web.StreamResponse:
    body = call.body
    model = params.model(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("'messages' is required and must be a non-empty array", "messages")
    n = params.integer(body, "n", lower=1, upper=MAX_CHOICES) or 1
    limit = completion_limit(call, "max_tokens", "max_completion_tokens")
    ignore_eos = params.flag(body, "ignore_eos")
    stream = params.flag(body, "stream")
    include_usage, continuous = params.stream_options(body) if stream else (False, False)
    if not call.options.report_usage:
        include_usage = continuous = False

    texts = message_texts(messages)
    seed = seed_of("\n".join(texts), request_seed(body))
    generation = Generation(
        prompt_tokens(texts, len(messages), call.body_size),
        choices(seed, n, limit, ignore_eos=ignore_eos),
    )
    base: dict[str, Any] = {
        "id": new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": now(),
        "model": model,
        "system_fingerprint": FINGERPRINT,
    }
    if stream:
        return await sse.stream(call, _chunks(base, generation, include_usage, continuous))
    return json_response(
        {
            **base,
            "choices": [
                {
                    "index": index,
                    "message": {
                        "role": "assistant",
                        "content": completion.text,
                        "refusal": None,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": completion.finish_reason,
                }
                for index, completion in enumerate(generation.completions)
            ],
            **({"usage": generation.usage()} if call.options.report_usage else {}),
        }
    )


def _chunks(
    base: dict[str, Any], generation: Generation, include_usage: bool, continuous: bool
) -> Iterator[sse.Event]:
    head = {**base, "object": "chat.completion.chunk"}  # same key order, chunk type

    def chunk(index: int, delta: dict[str, str], finish: str | None, done: int) -> bytes:
        payload: dict[str, Any] = {
            **head,
            "choices": [
                {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
            ],
        }
        if include_usage:
            payload["usage"] = generation.usage(done) if continuous else None
        return sse.data_event(payload)

    for index in range(len(generation.completions)):
        yield chunk(index, {"role": "assistant", "content": ""}, None, 0), False
    for done, (index, token, finish, first_of_step) in enumerate(generation.steps(), 1):
        yield chunk(index, {"content": token}, finish, done), first_of_step
    if include_usage:
        yield sse.data_event({**head, "choices": [], "usage": generation.usage()}), False
    yield sse.DONE, False

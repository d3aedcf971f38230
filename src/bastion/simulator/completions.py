"""POST /v1/completions: legacy text_completion objects, streamed or not."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from aiohttp import web

from bastion.simulator import params, sse
from bastion.simulator.call import Call
from bastion.simulator.chat import FINGERPRINT, completion_limit, request_seed
from bastion.simulator.generation import MAX_CHOICES, Generation, choices
from bastion.simulator.replies import json_response, new_id, now
from bastion.simulator.text import Completion, seed_of

MAX_PROMPTS = 64


async def create(call: Call) -> web.StreamResponse:
    body = call.body
    model = params.model(body)
    items = params.texts_or_tokens(body, "prompt", most=MAX_PROMPTS)
    n = params.integer(body, "n", lower=1, upper=MAX_CHOICES) or 1
    limit = completion_limit(call, "max_tokens")
    ignore_eos = params.flag(body, "ignore_eos")
    stream = params.flag(body, "stream")
    include_usage, continuous = params.stream_options(body) if stream else (False, False)
    if not call.options.report_usage:
        include_usage = continuous = False

    extra = request_seed(body)
    completions: list[Completion] = []
    for text, _ in items:
        completions.extend(choices(seed_of(text, extra), n, limit, ignore_eos=ignore_eos))
    prompt_total = max(1, min(sum(tokens for _, tokens in items), call.body_size))
    generation = Generation(prompt_total, completions)
    base: dict[str, Any] = {
        "id": new_id("cmpl-"),
        "object": "text_completion",
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
                    "text": completion.text,
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
    for done, (index, token, finish, first_of_step) in enumerate(generation.steps(), 1):
        payload: dict[str, Any] = {
            **base,
            "choices": [{"index": index, "text": token, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            payload["usage"] = generation.usage(done) if continuous else None
        yield sse.data_event(payload), first_of_step
    if include_usage:
        yield sse.data_event({**base, "choices": [], "usage": generation.usage()}), False
    yield sse.DONE, False

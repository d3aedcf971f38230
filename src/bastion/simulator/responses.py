"""POST /v1/responses, stateless: `response` objects and their named-event streams.

Nothing is stored, so requests that need storage (`store: true`, `previous_response_id`,
`background`, `conversation`) are refused with 400, as a non-storing upstream does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from aiohttp import web

from bastion.simulator import params, sse
from bastion.simulator.call import Call
from bastion.simulator.chat import request_seed
from bastion.simulator.errors import SimulatorError, invalid
from bastion.simulator.replies import json_response, new_id, now
from bastion.simulator.text import Completion, complete, message_texts, prompt_tokens, seed_of

# The `metadata` map is the one place of a Response where the schema allows our own label.
SIMULATED = {"simulated": "true"}


def _unsupported(param: str, why: str) -> SimulatorError:
    return SimulatorError(
        f"'{param}' is not supported: {why}", param=param, code="unsupported_parameter"
    )


def _check_stateless(body: params.Body) -> None:
    if params.flag(body, "store"):
        raise _unsupported("store", "this upstream does not store responses")
    if params.flag(body, "background"):
        raise _unsupported("background", "this upstream does not store responses")
    for name in ("previous_response_id", "conversation"):
        if body.get(name) is not None:
            raise _unsupported(name, "this upstream does not store responses")


def _input_texts(body: params.Body) -> tuple[list[str], int]:
    """(content strings, number of messages) of `instructions` plus `input`."""
    value = body.get("input")
    if isinstance(value, str):
        texts, messages = [value], 1
    elif isinstance(value, list) and value:
        texts, messages = message_texts(value), len(value)
    else:
        raise invalid("'input' is required: a string or a non-empty array of items", "input")
    instructions = params.text(body, "instructions")
    if instructions is not None:
        texts.insert(0, instructions)
        messages += 1
    return texts, messages


class _Reply:
    """The pieces of one response object, from which every event is built."""

    def __init__(self, call: Call, model: str, limit: int | None, seed: int) -> None:
        body = call.body
        texts, messages = _input_texts(body)
        self.input_tokens = prompt_tokens(texts, messages, call.body_size)
        cap = limit if limit is not None else call.options.default_max_tokens
        self.completion: Completion = complete(seed_of("\n".join(texts), seed), cap)
        # Cut by the simulator's default length, the text counts as complete: only the
        # client's own max_output_tokens makes a response incomplete.
        self.cut = limit is not None and self.completion.finish_reason == "length"
        self.message_id = new_id("msg_")
        metadata = body.get("metadata")
        self.base: dict[str, Any] = {
            "id": new_id("resp_"),
            "object": "response",
            "created_at": now(),
            "error": None,
            "instructions": body.get("instructions"),
            "max_output_tokens": limit,
            "model": model,
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None},
            "store": False,
            "temperature": body.get("temperature", 1.0),
            "text": body.get("text", {"format": {"type": "text"}}),
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools", []),
            "top_p": body.get("top_p", 1.0),
            "truncation": body.get("truncation", "disabled"),
            "metadata": {**metadata, **SIMULATED} if isinstance(metadata, dict) else SIMULATED,
        }
        if isinstance(body.get("user"), str):
            self.base["user"] = body["user"]

    def part(self, text: str) -> dict[str, Any]:
        return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}

    def item(self, final: bool) -> dict[str, Any]:
        status = "in_progress"
        if final:
            status = "incomplete" if self.cut else "completed"
        content = [self.part(self.completion.text)] if final else []
        return {
            "id": self.message_id,
            "type": "message",
            "status": status,
            "role": "assistant",
            "content": content,
        }

    def response(self, final: bool) -> dict[str, Any]:
        if not final:
            return {
                **self.base,
                "status": "in_progress",
                "completed_at": None,
                "incomplete_details": None,
                "output": [],  # no usage yet: the schema has no null for it
            }
        output_tokens = len(self.completion.pieces)
        return {
            **self.base,
            "status": "incomplete" if self.cut else "completed",
            "completed_at": None if self.cut else now(),
            "incomplete_details": {"reason": "max_output_tokens"} if self.cut else None,
            "output": [self.item(final=True)],
            "usage": {
                "input_tokens": self.input_tokens,
                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                "output_tokens": output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": self.input_tokens + output_tokens,
            },
        }

    def events(self) -> Iterator[sse.Event]:
        sequence = 0

        def event(kind: str, fields: dict[str, Any], tick: bool = False) -> sse.Event:
            nonlocal sequence
            payload = {"type": kind, "sequence_number": sequence, **fields}
            sequence += 1
            return sse.named_event(kind, payload), tick

        where = {"item_id": self.message_id, "output_index": 0, "content_index": 0}
        text = self.completion.text
        yield event("response.created", {"response": self.response(final=False)})
        yield event("response.in_progress", {"response": self.response(final=False)})
        yield event("response.output_item.added", {"output_index": 0, "item": self.item(False)})
        yield event("response.content_part.added", {**where, "part": self.part("")})
        for token in self.completion.pieces:
            yield event(
                "response.output_text.delta", {**where, "delta": token, "logprobs": []}, True
            )
        yield event("response.output_text.done", {**where, "text": text, "logprobs": []})
        yield event("response.content_part.done", {**where, "part": self.part(text)})
        yield event("response.output_item.done", {"output_index": 0, "item": self.item(True)})
        final = "response.incomplete" if self.cut else "response.completed"
        yield event(final, {"response": self.response(final=True)})


async def create(call: Call) -> web.StreamResponse:
    body = call.body
    model = params.model(body)
    _check_stateless(body)
    limit = params.integer(body, "max_output_tokens", lower=1, upper=params.MAX_TOKENS_LIMIT)
    reply = _Reply(call, model, limit, request_seed(body))
    if params.flag(body, "stream"):
        return await sse.stream(call, reply.events())
    return json_response(reply.response(final=True))

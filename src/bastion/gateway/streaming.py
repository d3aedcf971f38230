"""Relay an upstream SSE stream to the client, event by event, while metering it.

What the relay changes, and nothing else:
- the ``model`` field, back to the id the client asked for (when the deployment uses another);
- the usage Bastion asked for on the client's behalf: the usage-only chunk of chat and
  completions streams is hidden from a client that did not ask for it, and per-chunk
  ``continuous_usage_stats`` are removed (or nulled, as OpenAI does, when the client asked
  for usage);
- the terminal event (``data: [DONE]``, or ``response.completed`` and its siblings on the
  Responses API) is held back until the request's charge is durable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from bastion.core.catalog import Endpoint
from bastion.core.estimate import estimated_prompt_tokens
from bastion.core.usage import Usage
from bastion.upstream import sse
from bastion.upstream.usage import token_usage

# A chunk that carries generated text (not the role-only opening chunk, not an empty delta).
_PRODUCED = re.compile(rb'"(?:content|text|arguments|reasoning_content|reasoning)":\s?"[^"]')

RESPONSES_TERMINAL = frozenset({b"response.completed", b"response.incomplete", b"response.failed"})
RESPONSES_DELTAS = frozenset({b"response.output_text.delta", b"response.reasoning_text.delta"})


def model_rewriter(upstream_model: str, client_model: str) -> tuple[bytes, bytes, bytes, bytes]:
    """Needles and replacements for the ``"model": ...`` pair, in both spacings."""
    up = orjson.dumps(upstream_model)
    mine = orjson.dumps(client_model)
    return b'"model":' + up, b'"model":' + mine, b'"model": ' + up, b'"model": ' + mine


def rewrite_model(data: bytes, needles: tuple[bytes, bytes, bytes, bytes] | None) -> bytes:
    """Byte-level replacement is exact for JSON: inside a string, quotes are escaped, so the
    raw sequence ``"model":"x"`` can only be a member name and its value."""
    if needles is None:
        return data
    return data.replace(needles[0], needles[1]).replace(needles[2], needles[3])


@dataclass(slots=True)
class StreamMeter:
    """Per-stream state: what to forward, what was produced, what was reported."""

    endpoint: Endpoint
    client_wants_usage: bool
    added_continuous_usage: bool
    body_bytes: int
    needles: tuple[bytes, bytes, bytes, bytes] | None
    usage: Usage | None = None
    output_events: int = 0
    terminal: bytes | None = None
    held_usage_chunk: bytes | None = None
    done: bool = False
    _splitter: sse.EventSplitter = field(default_factory=sse.EventSplitter)

    def feed(self, chunk: bytes) -> bytes:
        """Bytes to forward now for this upstream chunk (may be empty)."""
        out = []
        for event in self._splitter.feed(chunk):
            forwarded = self._event(event)
            if forwarded:
                out.append(forwarded)
        return b"".join(out)

    def finish(self) -> bytes:
        """Flush an unterminated last event when the upstream closes."""
        rest = self._splitter.rest()
        return self._event(rest) or b"" if rest else b""

    # -- one event -------------------------------------------------------------------------

    def _event(self, event: bytes) -> bytes | None:
        kind, data = sse.fields(event)
        if data is None:
            return event + b"\n\n"  # a comment or keep-alive: pass it on
        if self.endpoint is Endpoint.RESPONSES:
            return self._responses_event(event, kind, data)
        return self._chat_event(event, data)

    def _chat_event(self, event: bytes, data: bytes) -> bytes | None:
        if data == b"[DONE]":
            self.done = True
            self.terminal = sse.DONE
            return None
        if b'"usage"' not in data:  # a plain chunk, the usual event: calls saved
            if _PRODUCED.search(data):
                self.output_events += 1
            if self.needles is not None:
                event = rewrite_model(event, self.needles)
            return event + b"\n\n"
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return event + b"\n\n"
        if not isinstance(chunk, dict):
            return event + b"\n\n"
        reported = token_usage(self.endpoint, chunk.get("usage"))
        if reported is not None:
            self.usage = reported
        if not chunk.get("choices") and reported is not None:
            # the usage-only chunk: shown only to clients that asked for it, after the charge
            if self.client_wants_usage:
                self.held_usage_chunk = sse.frame(rewrite_model(data, self.needles))
            return None
        self._count(data)
        if not self.client_wants_usage:
            chunk.pop("usage", None)
        elif self.added_continuous_usage:
            chunk["usage"] = None
        else:
            return rewrite_model(event, self.needles) + b"\n\n"
        return sse.frame(rewrite_model(orjson.dumps(chunk), self.needles))

    def _responses_event(self, event: bytes, kind: bytes | None, data: bytes) -> bytes | None:
        if not kind:  # no ``event:`` line, or an empty one (the default type): ask the data
            kind = _json_type(data)
        if kind in RESPONSES_TERMINAL:
            try:
                payload = orjson.loads(data)
                response = payload.get("response") if isinstance(payload, dict) else None
                reported = token_usage(
                    Endpoint.RESPONSES,
                    response.get("usage") if isinstance(response, dict) else None,
                )
            except orjson.JSONDecodeError:
                reported = None
            if reported is not None:
                self.usage = reported
            self.done = True
            self.terminal = rewrite_model(event, self.needles) + b"\n\n"
            return None
        if kind in RESPONSES_DELTAS:
            self.output_events += 1
        return rewrite_model(event, self.needles) + b"\n\n"

    def _count(self, data: bytes) -> None:
        if _PRODUCED.search(data):
            self.output_events += 1

    # -- billing ---------------------------------------------------------------------------

    def produced(self) -> Usage:
        """Usage to bill: what the upstream reported, else what Bastion counted (each relayed
        content event is one token, the way vLLM and the simulator stream)."""
        if self.usage is not None and (
            self.done
            or (self.added_continuous_usage and self.usage.output_tokens >= self.output_events)
        ):
            return self.usage
        reported_input = self.usage.input_tokens if self.usage else 0
        return Usage(
            input_tokens=reported_input or estimated_prompt_tokens(self.body_bytes),
            output_tokens=max(self.output_events, self.usage.output_tokens if self.usage else 0),
            source="estimated",
        )


def _json_type(data: bytes) -> bytes | None:
    try:
        payload: Any = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    kind = payload.get("type") if isinstance(payload, dict) else None
    return kind.encode() if isinstance(kind, str) else None


def error_event(message: str, code: str = "upstream_error", kind: str = "api_error") -> bytes:
    """The final event of a stream that failed after its first byte."""
    return sse.frame(orjson.dumps({"error": {"message": message, "type": kind, "code": code}}))

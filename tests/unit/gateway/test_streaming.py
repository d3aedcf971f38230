"""StreamMeter: what the relay forwards, hides, holds back and bills, event by event."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from bastion.core.catalog import Endpoint
from bastion.gateway.streaming import StreamMeter, error_event, model_rewriter, rewrite_model
from tests.support.conformance import sse_data

HEAD = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "up/m"}


def chunk(content: str | None, *, usage: Any = "absent", finish: str | None = None) -> bytes:
    delta = {"role": "assistant", "content": ""} if content is None else {"content": content}
    payload: dict[str, Any] = {
        **HEAD,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage != "absent":
        payload["usage"] = usage
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def usage_chunk(prompt: int, completion: int) -> bytes:
    usage = {"prompt_tokens": prompt, "completion_tokens": completion}
    return b"data: " + orjson.dumps({**HEAD, "choices": [], "usage": usage}) + b"\n\n"


def meter(
    endpoint: Endpoint = Endpoint.CHAT,
    wants: bool = False,
    continuous: bool = False,
    rewrite: bool = False,
) -> StreamMeter:
    return StreamMeter(
        endpoint=endpoint,
        client_wants_usage=wants,
        added_continuous_usage=continuous,
        body_bytes=400,
        needles=model_rewriter("up/m", "m") if rewrite else None,
    )


def relay(m: StreamMeter, events: list[bytes]) -> bytes:
    return b"".join(m.feed(e) for e in events) + m.finish()


def test_plain_chunks_pass_byte_for_byte_and_done_is_held() -> None:
    m = meter()
    events = [chunk(None), chunk("Hel"), chunk("lo", finish="stop"), b"data: [DONE]\n\n"]
    out = relay(m, events)
    assert out == b"".join(events[:3])
    assert m.done
    assert m.terminal == b"data: [DONE]\n\n"
    assert m.output_events == 2  # the role-only opening chunk produced nothing


def test_usage_is_hidden_from_a_client_that_did_not_ask() -> None:
    m = meter(continuous=True)
    events = [
        chunk(None, usage={"prompt_tokens": 9, "completion_tokens": 0}),
        chunk("a", usage={"prompt_tokens": 9, "completion_tokens": 1}),
        chunk("b", usage={"prompt_tokens": 9, "completion_tokens": 2}, finish="length"),
        usage_chunk(9, 2),
        b"data: [DONE]\n\n",
    ]
    out = relay(m, events)
    forwarded = [orjson.loads(d) for d in sse_data(out)]
    assert len(forwarded) == 3
    assert all("usage" not in event for event in forwarded)
    assert m.held_usage_chunk is None
    produced = m.produced()
    assert (produced.input_tokens, produced.output_tokens) == (9, 2)


def test_usage_is_shown_after_the_charge_to_a_client_that_asked() -> None:
    m = meter(wants=True, continuous=True)
    events = [
        chunk("a", usage={"prompt_tokens": 9, "completion_tokens": 1}),
        usage_chunk(9, 1),
        b"data: [DONE]\n\n",
    ]
    out = relay(m, events)
    [forwarded] = [orjson.loads(d) for d in sse_data(out)]
    assert forwarded["usage"] is None  # OpenAI's shape: null on every other chunk
    assert m.held_usage_chunk is not None
    held = orjson.loads(sse_data(m.held_usage_chunk)[0])
    assert held["choices"] == []
    assert held["usage"] == {"prompt_tokens": 9, "completion_tokens": 1}


def test_usage_the_client_asked_for_itself_passes_unchanged() -> None:
    m = meter(wants=True, continuous=False)
    event = chunk("a", usage={"prompt_tokens": 3, "completion_tokens": 1})
    assert m.feed(event) == event


def test_the_model_id_is_rewritten_everywhere() -> None:
    m = meter(wants=True, rewrite=True)
    spaced = (
        b'data: {"id": "x", "model": "up/m", '
        b'"choices": [{"index": 0, "delta": {"content": "q"}}]}\n\n'
    )
    out = relay(m, [chunk("a"), spaced, usage_chunk(1, 2), b"data: [DONE]\n\n"])
    assert b"up/m" not in out
    assert out.count(b'"model":"m"') == 1
    assert out.count(b'"model": "m"') == 1
    assert m.held_usage_chunk is not None
    assert b'"model":"m"' in m.held_usage_chunk


def test_rewrite_touches_only_the_model_member() -> None:
    needles = model_rewriter("up/m", "m")
    data = b'{"model":"up/m","choices":[{"delta":{"content":"the \\"model\\":\\"up/m\\" text"}}]}'
    out = rewrite_model(data, needles)
    assert orjson.loads(out)["model"] == "m"
    assert orjson.loads(out)["choices"][0]["delta"]["content"] == 'the "model":"up/m" text'


def test_comments_and_keep_alives_pass() -> None:
    m = meter()
    assert m.feed(b": ping\n\n") == b": ping\n\n"


def test_events_split_across_chunks() -> None:
    m = meter()
    whole = chunk("abc")
    assert m.feed(whole[:10]) == b""
    assert m.feed(whole[10:]) == whole


def test_a_cut_stream_bills_what_was_relayed() -> None:
    m = meter()
    relay(m, [chunk(None), chunk("a"), chunk("b"), chunk("c")])
    assert not m.done
    produced = m.produced()
    assert produced.output_tokens == 3
    assert produced.input_tokens > 0  # estimated from the request body
    assert produced.source == "estimated"


def test_a_cut_stream_with_continuous_usage_bills_the_reported_count() -> None:
    m = meter(continuous=True)
    relay(
        m,
        [
            chunk("a", usage={"prompt_tokens": 5, "completion_tokens": 1}),
            chunk("b", usage={"prompt_tokens": 5, "completion_tokens": 2}),
        ],
    )
    produced = m.produced()
    assert (produced.input_tokens, produced.output_tokens) == (5, 2)


def test_an_unterminated_last_event_is_flushed() -> None:
    m = meter()
    out = m.feed(chunk("a")[:-2])
    assert out == b""
    assert m.finish() == chunk("a")


def responses_event(kind: str, **fields: Any) -> bytes:
    payload = {"type": kind, **fields}
    return f"event: {kind}\n".encode() + b"data: " + orjson.dumps(payload) + b"\n\n"


@pytest.mark.parametrize(
    "terminal", ["response.completed", "response.incomplete", "response.failed"]
)
def test_responses_terminal_event_is_held_with_its_usage(terminal: str) -> None:
    m = meter(Endpoint.RESPONSES, rewrite=True)
    created = responses_event(
        "response.created", response={"model": "up/m", "status": "in_progress"}
    )
    delta = responses_event("response.output_text.delta", delta="hi")
    final = responses_event(
        terminal,
        response={"model": "up/m", "usage": {"input_tokens": 4, "output_tokens": 1}},
    )
    out = relay(m, [created, delta, final])
    assert out == rewrite_model(created + delta, m.needles)
    assert m.done
    assert m.terminal is not None
    assert b'"model":"m"' in m.terminal
    assert (m.produced().input_tokens, m.produced().output_tokens) == (4, 1)
    assert m.output_events == 1


def test_responses_events_without_an_event_line() -> None:
    m = meter(Endpoint.RESPONSES)
    final = b"data: " + orjson.dumps({"type": "response.completed", "response": {}}) + b"\n\n"
    assert m.feed(final) == b""
    assert m.done


def test_error_event_shape() -> None:
    [data] = sse_data(error_event("broke"))
    assert orjson.loads(data) == {
        "error": {"message": "broke", "type": "api_error", "code": "upstream_error"}
    }

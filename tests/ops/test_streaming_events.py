"""Regressions found by fuzzing the stream relay (fuzz/fuzz_sse.py)."""

from __future__ import annotations

from bastion.core.catalog import Endpoint
from bastion.gateway.streaming import StreamMeter


def test_an_empty_event_field_is_the_default_type() -> None:
    """``event:`` with nothing after it names the default type, like no ``event:`` line at
    all: the Responses terminal event is then recognised from its data."""
    meter = StreamMeter(
        endpoint=Endpoint.RESPONSES,
        client_wants_usage=False,
        added_continuous_usage=False,
        body_bytes=10,
        needles=None,
    )
    out = meter.feed(
        b'event: \ndata: {"type":"response.output_text.delta","delta":"Hi"}\n\n'
        b'event: \ndata: {"type":"response.completed","response":'
        b'{"usage":{"input_tokens":3,"output_tokens":1,"total_tokens":4}}}\n\n'
    )
    assert out.count(b"response.output_text.delta") == 1
    assert meter.done
    assert meter.terminal is not None
    assert meter.produced().output_tokens == 1
    assert meter.produced().source != "estimated"

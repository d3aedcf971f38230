"""Fuzz server-sent-event framing (``upstream/sse.py``) and the stream relay's meter
(``gateway/streaming.StreamMeter``) on arbitrary upstream bytes.

Properties: no exception but the splitter's documented ``ValueError`` for an oversized event;
and chunk-boundary invariance: the bytes relayed to the client, the terminal event, the
usage read and the count of produced output are the same however the upstream's byte stream
is cut into chunks (inside ``\\r\\n``, inside UTF-8, inside ``data:``).
"""

from __future__ import annotations

import atheris

with atheris.instrument_imports(include=["bastion"]):
    from bastion.core.catalog import Endpoint
    from bastion.gateway.streaming import StreamMeter, model_rewriter
    from bastion.upstream import sse

from common import main

ENDPOINTS = (Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.RESPONSES)


def _meter(endpoint: Endpoint, wants_usage: bool, continuous: bool, rewrite: bool) -> StreamMeter:
    return StreamMeter(
        endpoint=endpoint,
        client_wants_usage=wants_usage,
        added_continuous_usage=continuous,
        body_bytes=100,
        needles=model_rewriter("upstream/model", "client-model") if rewrite else None,
    )


def _run(meter: StreamMeter, chunks: list[bytes]) -> tuple[object, ...]:
    out = b"".join(meter.feed(chunk) for chunk in chunks) + meter.finish()
    produced = meter.produced()
    return (
        out,
        meter.terminal,
        meter.held_usage_chunk,
        meter.done,
        meter.output_events,
        produced.input_tokens,
        produced.output_tokens,
        produced.source,
    )


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    endpoint = ENDPOINTS[fdp.ConsumeIntInRange(0, 2)]
    options = (fdp.ConsumeBool(), fdp.ConsumeBool(), fdp.ConsumeBool())
    cuts = sorted({fdp.ConsumeIntInRange(0, 4096) for _ in range(fdp.ConsumeIntInRange(0, 8))})
    stream = fdp.ConsumeBytes(fdp.remaining_bytes())
    pieces, start = [], 0
    for cut in cuts:
        if start < cut <= len(stream):
            pieces.append(stream[start:cut])
            start = cut
    pieces.append(stream[start:])

    whole = _run(_meter(endpoint, *options), [stream])
    split = _run(_meter(endpoint, *options), pieces)
    assert whole == split, (pieces, whole, split)

    splitter = sse.EventSplitter(max_event_bytes=64)
    try:
        for piece in pieces:
            for event in splitter.feed(piece):
                kind, payload = sse.fields(event)
                if payload is not None:
                    # an empty ``event:`` means the default type, as no ``event:`` line does
                    assert sse.fields(sse.frame(payload, kind)) == (kind or None, payload)
    except ValueError:
        pass  # documented: an event larger than the limit


if __name__ == "__main__":
    main(test_one_input)

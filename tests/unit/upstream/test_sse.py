"""Splitting an SSE byte stream into events, whatever the chunking, and framing new ones."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.upstream import sse

STREAM = (
    b'data: {"a":1}\n\n'
    b'event: response.created\ndata: {"type":"response.created"}\n\n'
    b": keep-alive comment\n\n"
    b"data: line one\ndata: line two\n\n"
    b"data: [DONE]\n\n"
)
EVENTS = [
    b'data: {"a":1}',
    b'event: response.created\ndata: {"type":"response.created"}',
    b": keep-alive comment",
    b"data: line one\ndata: line two",
    b"data: [DONE]",
]


def split_all(chunks: list[bytes]) -> list[bytes]:
    splitter = sse.EventSplitter()
    events = [event for chunk in chunks for event in splitter.feed(chunk)]
    rest = splitter.rest()
    return events + ([rest] if rest else [])


def test_split_whole() -> None:
    assert split_all([STREAM]) == EVENTS


def test_split_byte_by_byte() -> None:
    assert split_all([STREAM[i : i + 1] for i in range(len(STREAM))]) == EVENTS


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=20))
def test_split_at_any_boundaries(cuts: list[int]) -> None:
    points = sorted({0, len(STREAM), *cuts})
    chunks = [STREAM[a:b] for a, b in itertools.pairwise(points)]
    assert split_all(chunks) == EVENTS


@pytest.mark.parametrize("newline", [b"\r\n", b"\r"])
def test_other_line_endings(newline: bytes) -> None:
    stream = b"data: 1" + newline * 2 + b"data: 2" + newline * 2
    splitter = sse.EventSplitter()
    assert splitter.feed(stream) == [b"data: 1", b"data: 2"]


def test_an_unterminated_last_event_is_kept() -> None:
    splitter = sse.EventSplitter()
    assert splitter.feed(b"data: 1\n\ndata: 2") == [b"data: 1"]
    assert splitter.rest() == b"data: 2"
    assert splitter.rest() == b""


def test_an_oversized_event_is_refused() -> None:
    splitter = sse.EventSplitter(max_event_bytes=16)
    with pytest.raises(ValueError, match="larger"):
        splitter.feed(b"data: " + b"x" * 32)


@pytest.mark.parametrize(
    ("event", "kind", "data"),
    [
        (b'data: {"a":1}', None, b'{"a":1}'),
        (b'data:{"a":1}', None, b'{"a":1}'),
        (b"event: x\ndata: y", b"x", b"y"),
        (b"data: a\ndata: b", None, b"a\nb"),
        (b"data:  two spaces", None, b" two spaces"),
        (b": comment", None, None),
        (b"id: 7\nretry: 10", None, None),
    ],
)
def test_fields(event: bytes, kind: bytes | None, data: bytes | None) -> None:
    assert sse.fields(event) == (kind, data)


def test_frame() -> None:
    assert sse.frame(b'{"a":1}') == b'data: {"a":1}\n\n'
    assert sse.frame(b"a\nb", b"kind") == b"event: kind\ndata: a\ndata: b\n\n"
    assert sse.fields(sse.frame(b"a\nb", b"k").rstrip(b"\n")) == (b"k", b"a\nb")
    assert sse.DONE == b"data: [DONE]\n\n"


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM) * 2), max_size=20))
def test_crlf_streams_at_any_boundaries(cuts: list[int]) -> None:
    stream = STREAM.replace(b"\n", b"\r\n")
    points = sorted({0, len(stream), *(min(c, len(stream)) for c in cuts)})
    chunks = [stream[a:b] for a, b in itertools.pairwise(points)]
    assert [e.replace(b"\r\n", b"\n") for e in split_all(chunks)] == EVENTS

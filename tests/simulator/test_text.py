"""Deterministic text and rough token counts."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.simulator.text import (
    MARKER,
    complete,
    message_texts,
    pieces,
    prompt_tokens,
    seed_of,
    tokens_for_chars,
)


def test_pieces_count_and_marker() -> None:
    assert pieces(1, 0) == []
    assert pieces(1, 1) == [MARKER]
    long = pieces(7, 20_000)  # longer than the internal sequence: it wraps
    assert len(long) == 20_000
    assert all(piece.startswith(" ") for piece in long[1:])


def test_completion_is_deterministic() -> None:
    assert complete(42, 30) == complete(42, 30)
    assert complete(42, 30).text != complete(43, 30).text
    cut = complete(42, 3)
    assert cut.finish_reason == "length"
    assert len(cut.pieces) == 3
    assert complete(42, 3, ignore_eos=True).pieces == cut.pieces
    natural = complete(42, 100_000)
    assert natural.finish_reason == "stop"
    assert 16 <= len(natural.pieces) < 256


def test_seed_of_handles_lone_surrogates() -> None:
    assert seed_of("\ud800") != seed_of("")


def test_message_texts_skip_roles_and_types() -> None:
    messages = [
        {"role": "user", "content": "ab"},
        {"role": "user", "content": [{"type": "text", "text": "cd"}], "name": "ef"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
    ]
    assert message_texts(messages) == ["ab", "cd", "ef", "f", "{}"]


def test_prompt_tokens_formula() -> None:
    assert tokens_for_chars(0) == 0
    assert tokens_for_chars(1) == 1
    assert tokens_for_chars(8) == 2
    assert prompt_tokens(["abcde"], 1, 1000) == 2 + 3
    assert prompt_tokens(["x" * 400], 1, 50) == 50  # capped by the body size


_message = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant"]), "content": st.text(max_size=300)}
)


@settings(max_examples=100, deadline=None)
@given(st.lists(_message, min_size=1, max_size=8))
def test_prompt_tokens_never_exceed_body_bytes(messages: list[dict[str, str]]) -> None:
    body = orjson.dumps({"model": "m", "messages": messages})
    texts = message_texts(messages)
    uncapped = tokens_for_chars(sum(map(len, texts))) + 3 * len(messages)
    assert uncapped <= len(body)  # the bound holds before the cap, too
    assert prompt_tokens(texts, len(messages), len(body)) <= len(body)

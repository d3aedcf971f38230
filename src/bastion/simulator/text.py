"""Deterministic pseudo-text and rough token counting.

One token is one piece of text the simulator emits: the marker "[simulated]" first, then
" word" pieces. Text depends only on a seed taken from the prompt, so the same prompt always
gets the same answer, and a test can predict lengths without a tokenizer.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

MARKER = "[simulated]"

# Completions end on their own after 16..255 tokens unless max_tokens cuts them first.
MIN_NATURAL_LENGTH = 16
NATURAL_SPREAD = 240

_SYLLABLES = ("ka", "lo", "mi", "ne", "su", "ta", "ri", "vo", "pe", "da", "xi", "bu", "zo", "fa")


def _build_sequence(size: int) -> tuple[str, ...]:
    # A fixed private generator: the sequence is the same in every process and run.
    rng = random.Random(20240611)
    words = ["".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 3))) for _ in range(512)]
    pieces: list[str] = []
    for _ in range(size):
        word = rng.choice(words)
        roll = rng.random()
        if roll < 0.06:
            word += "."
        elif roll < 0.1:
            word += ","
        pieces.append(" " + word)
    return tuple(pieces)


_SEQUENCE = _build_sequence(8192)


@dataclass(slots=True, frozen=True)
class Completion:
    pieces: list[str]
    finish_reason: str  # "stop" (ended on its own) or "length" (cut by the token limit)

    @property
    def text(self) -> str:
        return "".join(self.pieces)


def seed_of(text: str, extra: int = 0) -> int:
    return zlib.crc32(text.encode("utf-8", "surrogatepass"), extra & 0xFFFFFFFF)


def pieces(seed: int, count: int) -> list[str]:
    """`count` tokens: the simulated marker, then words from the fixed sequence."""
    if count <= 0:
        return []
    out = [MARKER]
    offset = seed % len(_SEQUENCE)
    while len(out) < count:
        take = min(count - len(out), len(_SEQUENCE) - offset)
        out.extend(_SEQUENCE[offset : offset + take])
        offset = 0
    return out


def complete(seed: int, limit: int, *, ignore_eos: bool = False) -> Completion:
    natural = MIN_NATURAL_LENGTH + (seed >> 8) % NATURAL_SPREAD
    if ignore_eos or natural > limit:
        return Completion(pieces(seed, limit), "length")
    return Completion(pieces(seed, natural), "stop")


def tokens_for_chars(chars: int) -> int:
    """Rough count: a quarter of the characters, rounded up."""
    return -(-chars // 4)


# Keys whose string values name structure, not content, in chat messages and response items.
_STRUCTURAL_KEYS = frozenset({"role", "type", "id", "status", "call_id", "detail"})


def strings(value: Any) -> Iterator[str]:
    """Every content string inside a JSON value, depth first; structural keys skipped."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in _STRUCTURAL_KEYS:
                yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def message_texts(messages: Iterable[Any]) -> list[str]:
    """The content strings of chat messages or response input items."""
    texts: list[str] = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str) and len(message) <= 2:
            texts.append(content)  # the common {"role", "content"} case, without the walk
        else:
            texts.extend(strings(message))
    return texts


def prompt_tokens(texts: list[str], messages: int, body_size: int) -> int:
    """ceil(chars / 4) + 3 per message, never more than the body's byte length.

    Characters never outnumber UTF-8 bytes, and each message costs far more than 3 bytes
    of JSON, so the cap only matters for odd inputs; the gateway relies on it as a bound.
    """
    count = tokens_for_chars(sum(map(len, texts))) + 3 * messages
    return max(1, min(count, body_size))

"""POST /v1/embeddings: deterministic unit vectors seeded from each input.

A vector is a window of one fixed table of (cos a, sin a) pairs scaled by sqrt(2 / dim):
every window of `dim` values that starts on a pair has norm exactly 1, so an embedding is
one list slice, without per-request arithmetic.
"""

from __future__ import annotations

import base64
import functools
import math
import random
import sys
from array import array

from aiohttp import web

from bastion.simulator import params
from bastion.simulator.call import Call
from bastion.simulator.errors import invalid
from bastion.simulator.replies import json_response
from bastion.simulator.text import seed_of

MAX_DIMENSIONS = 8192
MAX_INPUTS = 2048
DEFAULT_DIMENSIONS = 1024
# Dimensions of the catalog's embedding models (looked up case-insensitively).
MODEL_DIMENSIONS = {"bge-m3": 1024, "qwen3-embedding-8b": 4096, "bge-multilingual-gemma2": 3584}

_PAIRS = 16384


@functools.cache
def _angles() -> list[float]:
    rng = random.Random(20240612)  # fixed: embeddings are the same in every run
    return [rng.uniform(0.0, math.tau) for _ in range(_PAIRS)]


@functools.lru_cache(maxsize=8)
def _table(even_dim: int) -> tuple[list[float], bytes]:
    """Pair table scaled for `even_dim`, padded so no window wraps; and its float32 bytes."""
    scale = math.sqrt(2.0 / even_dim)
    values: list[float] = []
    for angle in _angles():
        # 7 decimals keep the JSON short; the norm stays 1 within 1e-6
        values.append(round(math.cos(angle) * scale, 7))
        values.append(round(math.sin(angle) * scale, 7))
    values.extend(values[:MAX_DIMENSIONS])
    packed = array("f", values)
    if sys.byteorder == "big":
        packed.byteswap()  # the wire format is little-endian float32
    return values, packed.tobytes()


def dimensions_for(model: str) -> int:
    return MODEL_DIMENSIONS.get(model.rsplit("/", 1)[-1].lower(), DEFAULT_DIMENSIONS)


def _vector(seed: int, dim: int, as_base64: bool) -> list[float] | str:
    if dim == 1:
        return base64.b64encode(array("f", [1.0]).tobytes()).decode() if as_base64 else [1.0]
    even = dim - dim % 2
    values, packed = _table(even)
    start = 2 * (seed % _PAIRS)
    if as_base64:
        raw = packed[4 * start : 4 * (start + even)]
        if dim != even:
            raw += b"\0\0\0\0"  # odd dimensions end in a zero, which keeps the norm at 1
        return base64.b64encode(raw).decode("ascii")
    window = values[start : start + even]
    if dim != even:
        window.append(0.0)
    return window


async def create(call: Call) -> web.StreamResponse:
    body = call.body
    model = params.model(body)
    items = params.texts_or_tokens(body, "input", most=MAX_INPUTS)
    dim = params.integer(body, "dimensions", lower=1, upper=MAX_DIMENSIONS)
    if dim is None:
        dim = dimensions_for(model)
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise invalid("'encoding_format' must be 'float' or 'base64'", "encoding_format")
    as_base64 = encoding == "base64"
    tokens = max(1, min(sum(count for _, count in items), call.body_size))
    return json_response(
        {
            "object": "list",
            "data": [
                {
                    "object": "embedding",
                    "index": index,
                    "embedding": _vector(seed_of(text), dim, as_base64),
                }
                for index, (text, _) in enumerate(items)
            ],
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )

"""POST /v1/embeddings."""

from __future__ import annotations

import base64
import math
import struct

import aiohttp
import openai
import orjson
import pytest

from .harness import Simulator
from .schemas import validate


def norm(vector: list[float]) -> float:
    return math.sqrt(sum(value * value for value in vector))


async def test_float_vectors_in_input_order(client: openai.AsyncOpenAI) -> None:
    raw = await client.embeddings.with_raw_response.create(
        model="bge-m3", input=["alpha", "beta", "alpha"], encoding_format="float"
    )
    body = orjson.loads(raw.content)
    validate(body, "CreateEmbeddingResponse")
    result = raw.parse()
    assert result.model == "bge-m3"
    assert [item.index for item in result.data] == [0, 1, 2]
    vectors = [item.embedding for item in result.data]
    assert all(len(vector) == 1024 for vector in vectors)
    assert all(norm(vector) == pytest.approx(1.0, abs=1e-5) for vector in vectors)
    assert vectors[0] == vectors[2]
    assert vectors[0] != vectors[1]
    assert result.usage.prompt_tokens == 2 + 1 + 2  # ceil(5/4), ceil(4/4), ceil(5/4)
    assert result.usage.total_tokens == result.usage.prompt_tokens


async def test_sdk_default_base64_decodes_to_the_same_vectors(
    client: openai.AsyncOpenAI,
) -> None:
    as_float = await client.embeddings.create(model="m", input="x", encoding_format="float")
    # The SDK asks for base64 by default and decodes it itself.
    as_base64 = await client.embeddings.create(model="m", input="x")
    assert as_base64.data[0].embedding == pytest.approx(as_float.data[0].embedding, abs=1e-6)


async def test_raw_base64_is_little_endian_float32(
    simulator: Simulator, http: aiohttp.ClientSession
) -> None:
    body = {"model": "m", "input": "x", "encoding_format": "base64", "dimensions": 7}
    async with http.post(f"{simulator.url}/v1/embeddings", json=body) as response:
        data = (await response.json())["data"][0]["embedding"]
    raw = base64.b64decode(data)
    assert len(raw) == 7 * 4
    vector = list(struct.unpack("<7f", raw))
    assert norm(vector) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(
    ("model", "dimensions"),
    [
        ("bge-m3", 1024),
        ("Qwen3-Embedding-8B", 4096),
        ("bge-multilingual-gemma2", 3584),
        ("anything-else", 1024),
    ],
)
async def test_dimensions_by_model(client: openai.AsyncOpenAI, model: str, dimensions: int) -> None:
    result = await client.embeddings.create(model=model, input="x", encoding_format="float")
    assert len(result.data[0].embedding) == dimensions


@pytest.mark.parametrize("dimensions", [1, 2, 3, 255, 8192])
async def test_dimensions_parameter(client: openai.AsyncOpenAI, dimensions: int) -> None:
    result = await client.embeddings.create(
        model="bge-m3", input="x", dimensions=dimensions, encoding_format="float"
    )
    vector = result.data[0].embedding
    assert len(vector) == dimensions
    assert norm(vector) == pytest.approx(1.0, abs=1e-5)


async def test_token_id_inputs(client: openai.AsyncOpenAI) -> None:
    single = await client.embeddings.create(model="m", input=[5, 6, 7], encoding_format="float")
    assert len(single.data) == 1
    assert single.usage.prompt_tokens == 3
    many = await client.embeddings.create(model="m", input=[[5, 6], [7]], encoding_format="float")
    assert len(many.data) == 2
    assert many.usage.prompt_tokens == 3


@pytest.mark.parametrize(
    "body",
    [
        {"input": "x"},
        {"model": "m"},
        {"model": "m", "input": []},
        {"model": "m", "input": [1.5]},
        {"model": "m", "input": "x", "encoding_format": "int8"},
        {"model": "m", "input": "x", "dimensions": 0},
    ],
)
async def test_bad_requests(
    simulator: Simulator, http: aiohttp.ClientSession, body: dict[str, object]
) -> None:
    async with http.post(f"{simulator.url}/v1/embeddings", json=body) as response:
        assert response.status == 400
        validate(await response.json(), "ErrorResponse")

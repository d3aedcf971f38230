"""GET /v1/models."""

from __future__ import annotations

import openai
import orjson

from bastion.simulator.models import CATALOG

from .schemas import validate


async def test_lists_the_default_catalog(client: openai.AsyncOpenAI) -> None:
    raw = await client.models.with_raw_response.list()
    validate(orjson.loads(raw.content), "ListModelsResponse")
    models = [model async for model in raw.parse()]
    assert [model.id for model in models] == list(CATALOG)
    assert {model.owned_by for model in models} == {"bastion-simulator"}
    assert "bge-m3" in CATALOG
    assert "whisper-large-v3-turbo" in CATALOG


async def test_retrieve_echoes_any_id(client: openai.AsyncOpenAI) -> None:
    model = await client.models.retrieve("org/some-model")
    assert model.id == "org/some-model"
    assert model.owned_by == "bastion-simulator"

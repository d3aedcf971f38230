"""Calling the TTS endpoint with plain aiohttp (it is outside the OpenAI SDK's surface)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson
from multidict import CIMultiDictProxy

from bastion.core.usage import Usage, price_usage
from bastion.simulator.faults import INTERNAL_DETAIL
from tests.support.harness import Stack

PATH = "/api/v1/tts/text_to_audio"
VOICES = {
    "en-US": "English-US.Female-1",
    "de-DE": "German-DE.Male-1",
    "es-ES": "Spanish-ES.Female-1",
    "it-IT": "Italian-IT.Male-1",
}
MODELS = {"en-US": "tts-en-us", "de-DE": "tts-de-de", "es-ES": "tts-es-es", "it-IT": "tts-it-it"}


def speech(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "text": "Hello from Bastion.",
        "language_code": "en-US",
        "encoding": 1,
        "sample_rate_hz": 22050,
        "voice_name": "English-US.Female-1",
    }
    body.update(changes)
    return body


@dataclass
class Reply:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")

    def error(self) -> dict[str, str]:
        assert self.content_type.startswith("application/json"), self.content_type
        assert INTERNAL_DETAIL.encode() not in self.body
        error: dict[str, str] = orjson.loads(self.body)["error"]
        return error


async def tts(
    stack: Stack,
    key: str | None,
    body: Any,
    *,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> Reply:
    sent = {"Content-Type": "application/json", **(headers or {})}
    if key is not None:
        sent["Authorization"] = f"Bearer {key}"
    data = raw if raw is not None else orjson.dumps(body)
    async with stack.http.post(f"{stack.url}{PATH}", data=data, headers=sent) as response:
        return Reply(response.status, response.headers, await response.read())


async def charges(stack: Stack, account_id: str) -> list[dict[str, Any]]:
    await stack.settled()
    entries = await stack.runtime.db.ledger.entries(account_id)
    return [e for e in entries if e["kind"] == "charge"]


def price_of(stack: Stack, model: str, characters: int) -> int:
    found = stack.runtime.settings.catalog.get(model)
    assert found is not None
    return price_usage(Usage(characters=characters), found.price)


async def holds_released(stack: Stack, account_id: str) -> bool:
    for _ in range(200):
        if await stack.runtime.admission_store.open_holds(account_id) == 0:
            return True
        await asyncio.sleep(0.01)
    return False

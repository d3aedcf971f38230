"""Reading raw SSE streams in tests, to see bytes the SDK hides (null vs absent fields)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson


@dataclass
class Event:
    event: str | None
    data: str

    def json(self) -> Any:
        return orjson.loads(self.data)


def parse(text: str) -> list[Event]:
    events: list[Event] = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        name: str | None = None
        data: list[str] = []
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                data.append(line[len("data: ") :])
        events.append(Event(name, "\n".join(data)))
    return events


async def post_stream(
    http: aiohttp.ClientSession, url: str, body: dict[str, Any]
) -> tuple[aiohttp.ClientResponse, list[Event]]:
    async with http.post(url, json=body) as response:
        text = await response.text()
    return response, parse(text)

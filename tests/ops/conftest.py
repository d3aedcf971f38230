"""Fixtures for the operations tests: a stack with the admin listener on an ephemeral port,
and a scraper that reads its Prometheus metrics."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.harness import Stack
from tests.support.processes import Processes

ADMIN: dict[str, Any] = {"admin": {"enabled": True, "port": 0}}


@pytest.fixture
def config() -> dict[str, Any]:
    return dict(ADMIN)


class Scrape:
    """One scrape of ``/metrics``: samples by name and labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: list[tuple[str, dict[str, str], float]] = [
            (sample.name, dict(sample.labels), sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples of ``name`` whose labels include ``labels``."""
        return sum(
            value
            for sample, found, value in self.samples
            if sample == name and all(found.get(k) == v for k, v in labels.items())
        )

    def by(self, name: str, *keys: str) -> Mapping[tuple[str, ...], float]:
        out: dict[tuple[str, ...], float] = {}
        for sample, found, value in self.samples:
            if sample == name and value:
                key = tuple(found.get(k, "") for k in keys)
                out[key] = out.get(key, 0.0) + value
        return out


async def scrape(stack: Stack, headers: Mapping[str, str] | None = None) -> Scrape:
    assert stack.server.admin_url is not None
    async with stack.http.get(f"{stack.server.admin_url}/metrics", headers=headers) as response:
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return Scrape(await response.text())


async def call(
    stack: Stack, method: str, path: str, key: str | None = None, **kwargs: Any
) -> tuple[int, dict[str, Any] | str, Mapping[str, str]]:
    headers = dict(kwargs.pop("headers", {}))
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    async with stack.http.request(method, stack.url + path, headers=headers, **kwargs) as r:
        body: dict[str, Any] | str
        body = await r.json() if r.content_type == "application/json" else await r.text()
        return r.status, body, r.headers


async def announced(processes: Processes, name: str, pattern: str, attempts: int = 600) -> str:
    """What a started process printed for ``pattern`` (its first group): a gateway started on
    port 0 says where it listens, so no port is guessed (and raced for) by the test."""
    for _ in range(attempts):
        found = re.search(pattern, processes.log(name))
        if found:
            return found[1]
        if processes.process(name).poll() is not None:
            raise AssertionError(f"{name} exited early:\n{processes.log(name)}")
        await asyncio.sleep(0.02)
    raise AssertionError(f"{name} never printed {pattern!r}:\n{processes.log(name)}")

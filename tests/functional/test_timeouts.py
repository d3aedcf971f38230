"""First-byte and between-chunk timeouts are separate limits, each enforced as configured."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.support.harness import Stack

MESSAGES = [{"role": "user", "content": "gaps"}]


@pytest.fixture
def config(simulator_url: str) -> dict[str, Any]:
    def chat(upstream: str) -> dict[str, Any]:
        return {
            "category": "chat",
            "price": {"input_per_mtok": "0.1", "output_per_mtok": "0.1"},
            "deployments": [{"upstream": upstream, "model": "gpt-oss-20b"}],
        }

    return {
        "upstreams": {
            # slow to start, strict between chunks
            "strict-gaps": {
                "base_url": simulator_url,
                "timeouts": {"first_byte_s": 5, "between_chunks_s": 0.5, "total_s": 30},
            },
            # quick to start, patient between chunks
            "patient-gaps": {
                "base_url": simulator_url,
                "timeouts": {"first_byte_s": 0.5, "between_chunks_s": 5, "total_s": 30},
            },
        },
        "models": {"strict-gaps": chat("strict-gaps"), "patient-gaps": chat("patient-gaps")},
    }


async def _stream(stack: Stack, http: aiohttp.ClientSession, model: str) -> bytes:
    _, key = await stack.account_and_key()
    body = {"model": model, "messages": MESSAGES, "max_tokens": 3, "stream": True}
    async with http.post(
        f"{stack.url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
    ) as response:
        assert response.status == 200
        return await response.read()


async def test_a_gap_longer_than_between_chunks_s_ends_the_stream(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    await stack.sim_control(fault="stall", stall_after_chunks=2)
    raw = await _stream(stack, http, "strict-gaps")
    assert b'"code":"upstream_error"' in raw
    assert b"[DONE]" not in raw


async def test_gaps_longer_than_first_byte_s_are_fine_between_chunks(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    # a token every ~0.8 s: longer than first_byte_s, shorter than between_chunks_s
    await stack.sim_control(tokens_per_second=1.25, first_token_ms=0)
    raw = await _stream(stack, http, "patient-gaps")
    assert raw.rstrip().endswith(b"data: [DONE]")

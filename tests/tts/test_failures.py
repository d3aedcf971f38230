"""A Riva upstream that fails, stalls, refuses or cannot be reached: 502, nothing charged."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from bastion.simulator.riva import RivaSimulator
from tests.support.harness import Stack
from tests.tts.support import PATH, Reply, charges, holds_released, speech, tts


async def failed(stack: Stack, account_id: str, reply: Reply) -> str:
    assert reply.status == 502, reply.body
    error = reply.error()  # also: the simulator's internal detail never shows
    assert error["code"] == "upstream_error"
    assert error["type"] == "api_error"
    assert await charges(stack, account_id) == []
    assert await holds_released(stack, account_id)
    return error["message"]


@pytest.mark.parametrize(
    ("status", "fragment"),
    [
        ("UNAVAILABLE", "unreachable (UNAVAILABLE)"),
        ("INTERNAL", "failed (INTERNAL)"),
        ("RESOURCE_EXHAUSTED", "overloaded (RESOURCE_EXHAUSTED)"),
        ("UNKNOWN", "failed (UNKNOWN)"),
        ("UNAUTHENTICATED", "refused Bastion's credentials (UNAUTHENTICATED)"),
    ],
)
async def test_an_upstream_error_is_a_free_502(
    stack: Stack, riva: RivaSimulator, status: str, fragment: str
) -> None:
    riva.options.fault = "error"
    riva.options.fault_status = status
    account_id, key = await stack.account_and_key()
    message = await failed(stack, account_id, await tts(stack, key, speech()))
    assert message.startswith("The speech server for `en-US` failed: ")
    assert fragment in message
    assert [c["status"] for c in riva.journal] == [status]


async def test_an_unknown_voice_is_a_502_that_says_so(stack: Stack, riva: RivaSimulator) -> None:
    account_id, key = await stack.account_and_key()
    for _ in range(6):  # more than circuit_failures: a refusal does not open the circuit
        reply = await tts(stack, key, speech(voice_name="German-DE.Male-1"))
        message = await failed(stack, account_id, reply)
    assert "rejected the request (INVALID_ARGUMENT)" in message
    assert "the voice `German-DE.Male-1` may not exist for `en-US`" in message
    assert riva.journal[-1]["status"] == "INVALID_ARGUMENT"
    assert (await tts(stack, key, speech())).status == 200


class TestDeadline:
    @pytest.fixture
    def config(self) -> dict[str, Any]:
        timeouts = {"connect_s": 1, "first_byte_s": 0.3, "total_s": 2}
        return {"upstreams": {"riva-simulator": {"timeouts": timeouts}}}

    async def test_a_stalled_upstream_times_out(self, stack: Stack, riva: RivaSimulator) -> None:
        riva.options.fault = "stall"
        account_id, key = await stack.account_and_key()
        message = await failed(stack, account_id, await tts(stack, key, speech()))
        assert "did not answer in time (DEADLINE_EXCEEDED)" in message
        assert riva.journal[-1]["status"] == "STALLED"
        riva.options.fault = None
        assert (await tts(stack, key, speech())).status == 200


class TestUnreachable:
    @pytest.fixture
    def config(self) -> dict[str, Any]:
        return {
            "upstreams": {
                # nothing listens on port 1; a failed deployment is skipped while its circuit
                # is open
                "riva-simulator": {"base_url": "grpc://127.0.0.1:1", "circuit_failures": 2}
            }
        }

    async def test_an_unreachable_upstream_then_an_open_circuit(self, stack: Stack) -> None:
        account_id, key = await stack.account_and_key()
        for _ in range(2):
            message = await failed(stack, account_id, await tts(stack, key, speech()))
            assert "unreachable (UNAVAILABLE)" in message
        message = await failed(stack, account_id, await tts(stack, key, speech()))
        assert "every deployment of this model is failing; retry shortly" in message


async def test_no_credit_is_refused_before_the_upstream(stack: Stack, riva: RivaSimulator) -> None:
    _, key = await stack.account_and_key(usd="0.0001")  # 100 micro-USD; the text costs 285
    reply = await tts(stack, key, speech(text="Hello from Bastion."))
    assert reply.status == 402
    assert reply.error()["code"] == "insufficient_funds"
    assert not riva.journal


async def test_a_client_gone_during_synthesis_pays_nothing(
    stack: Stack, riva: RivaSimulator
) -> None:
    riva.options.fault = "stall"
    account_id, key = await stack.account_and_key()
    with pytest.raises(asyncio.TimeoutError):
        async with stack.http.post(
            f"{stack.url}{PATH}",
            json=speech(),
            headers={"Authorization": f"Bearer {key}"},
            timeout=aiohttp.ClientTimeout(total=0.3),
        ) as response:
            await response.read()
    assert await holds_released(stack, account_id)
    assert await charges(stack, account_id) == []
    riva.options.fault = None
    assert (await tts(stack, key, speech())).status == 200

"""What the upstream client sends besides the body: its own headers, the operator's (which
replace its own whatever their case) and the upstream credential, each once; never a cookie."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from multidict import CIMultiDict

from bastion.settings.model import Secret, UpstreamSettings
from bastion.upstream.openai import Deadline, OpenAIUpstream


@pytest.fixture
async def echo() -> AsyncIterator[tuple[str, list[CIMultiDict[str]]]]:
    seen: list[CIMultiDict[str]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(CIMultiDict(request.headers))
        await request.read()
        response = web.json_response({"ok": True})
        response.set_cookie("session", "tenant-a-affinity")  # e.g. a balancer's stickiness
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", record)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://localhost:{port}", seen  # a name: aiohttp's jar ignores cookies of IPs
    await runner.cleanup()


async def _send(upstream: OpenAIUpstream) -> None:
    reply = await upstream.send(
        "/v1/chat/completions",
        b"{}",
        content_type="application/json",
        deadline=Deadline.after(5),
    )
    await reply.body()
    reply.release()


async def test_its_own_headers_and_the_credential(
    echo: tuple[str, list[CIMultiDict[str]]],
) -> None:
    url, seen = echo
    upstream = OpenAIUpstream(
        UpstreamSettings(name="u", kind="openai", base_url=url, api_key=Secret("sk-up"))
    )
    try:
        await _send(upstream)
        await _send(upstream)  # the cached header set, the second time
    finally:
        await upstream.close()
    assert len(seen) == 2
    for headers in seen:
        assert "Cookie" not in headers  # one request's cookie never reaches the next
        assert headers.getall("User-Agent") == ["bastion"]
        assert headers.getall("Accept-Encoding") == ["identity"]
        assert headers.getall("Authorization") == ["Bearer sk-up"]
        assert headers.getall("Content-Type") == ["application/json"]


async def test_the_operators_headers_replace_its_own_whatever_their_case(
    echo: tuple[str, list[CIMultiDict[str]]],
) -> None:
    url, seen = echo
    upstream = OpenAIUpstream(
        UpstreamSettings(
            name="u",
            kind="openai",
            base_url=url,
            headers={"user-agent": "acme-gateway/2", "x-tenant": "blue"},
        )
    )
    try:
        await _send(upstream)
    finally:
        await upstream.close()
    (headers,) = seen
    assert headers.getall("User-Agent") == ["acme-gateway/2"]
    assert headers.getall("X-Tenant") == ["blue"]
    assert "Authorization" not in headers

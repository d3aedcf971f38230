"""What the upstream client sends besides the body: its own headers, the operator's (which
replace its own whatever their case) and the upstream credential, each once; never a cookie.
And how it trusts an https upstream: the system's roots, or the operator's private CA."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from multidict import CIMultiDict

from bastion.errors import ConfigError
from bastion.settings.model import Secret, UpstreamSettings
from bastion.upstream.openai import Deadline, OpenAIUpstream, UpstreamAttemptError
from tests.support.tls import self_signed


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


async def test_an_https_upstream_is_verified_against_its_private_ca(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    url = f"https://localhost:{runner.addresses[0][1]}"
    trusted = OpenAIUpstream(
        UpstreamSettings(name="u", kind="openai", base_url=url, tls_ca_file=cert)
    )
    unknown = OpenAIUpstream(UpstreamSettings(name="u", kind="openai", base_url=url))
    try:
        await _send(trusted)  # the private CA verifies the server
        with pytest.raises(UpstreamAttemptError, match="could not be reached"):
            await _send(unknown)  # the system's roots do not
    finally:
        await trusted.close()
        await unknown.close()
        await runner.cleanup()


def test_an_unreadable_ca_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tls_ca_file"):
        OpenAIUpstream(
            UpstreamSettings(
                name="u",
                kind="openai",
                base_url="https://vllm.internal",
                tls_ca_file=tmp_path / "missing.pem",
            )
        )


def test_a_header_that_cannot_be_sent_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match=r"upstreams\.u\.headers\.X-A: a line break"):
        OpenAIUpstream(
            UpstreamSettings(
                name="u", kind="openai", base_url="http://vllm.internal", headers={"X-A": "b\nc"}
            )
        )

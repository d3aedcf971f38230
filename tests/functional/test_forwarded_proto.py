"""A plain listener behind a TLS-terminating proxy: ``X-Forwarded-Proto: https`` is honoured
only from the configured trusted proxies; any other request is treated as plain HTTP (308, a
valid key revoked).  Without trusted proxies, plain HTTP on loopback is local development."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.cli.serve import _announce_plain
from tests.support.conformance import call
from tests.support.harness import Stack

TRUSTED = ["127.0.0.1/32", "::1/128"]
ELSEWHERE = ["10.0.0.0/8"]


@pytest.fixture
def proxies() -> list[str]:
    return TRUSTED


@pytest.fixture
def config(proxies: list[str]) -> dict[str, Any]:
    return {"listener": {"trusted_proxies": proxies, "https_redirect_port": 8443}}


async def test_https_forwarded_by_a_trusted_proxy_is_served(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    _announce_plain(stack.server)
    announced = capsys.readouterr().err
    assert "X-Forwarded-Proto" in announced
    assert "127.0.0.1/32" in announced
    _, key = await stack.account_and_key()
    reply = await call(stack, "GET", "/v1/models", key=key, headers={"X-Forwarded-Proto": "https"})
    assert reply.status == 200
    reply = await call(
        stack, "GET", "/v1/models", key=key, headers={"X-Forwarded-Proto": "HTTPS, http"}
    )
    assert reply.status == 200
    client = stack.client(key, default_headers={"X-Forwarded-Proto": "https"})
    answer = await client.chat.completions.create(
        model="gpt-oss-120b",
        messages=[{"role": "user", "content": "x"}],
        max_tokens=1,
    )
    assert answer.choices


@pytest.mark.parametrize("forwarded", [None, "http", "wss", ""])
async def test_plain_http_through_the_proxy_is_redirected(
    stack: Stack, forwarded: str | None
) -> None:
    account_id, key = await stack.account_and_key()
    headers = {} if forwarded is None else {"X-Forwarded-Proto": forwarded}
    async with stack.http.get(
        stack.url + "/v1/models?a=1",
        headers={"Authorization": f"Bearer {key}", **headers},
        allow_redirects=False,
    ) as response:
        assert response.status == 308
        assert response.headers["Location"] == "https://127.0.0.1:8443/v1/models?a=1"
        assert key not in await response.text()
    [record] = await stack.runtime.keys.list(account_id)
    assert not record.is_active
    assert (
        await call(stack, "GET", "/v1/models", key=key, headers={"X-Forwarded-Proto": "https"})
    ).status == 401


@pytest.mark.parametrize("proxies", [ELSEWHERE])
async def test_the_header_from_an_untrusted_peer_is_ignored(stack: Stack) -> None:
    account_id, key = await stack.account_and_key()
    reply = await call(stack, "GET", "/v1/models", key=key, headers={"X-Forwarded-Proto": "https"})
    assert reply.status == 308
    [record] = await stack.runtime.keys.list(account_id)
    assert not record.is_active
    events = await stack.runtime.db.audit.list(account_id=account_id, action="key.exposed")
    assert len(events) == 1


@pytest.mark.parametrize("proxies", [[]])
async def test_loopback_without_proxies_is_local_development(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    _, key = await stack.account_and_key()
    assert (await call(stack, "GET", "/v1/models", key=key)).status == 200
    _announce_plain(stack.server)
    announced = capsys.readouterr().err
    assert "plain HTTP" in announced
    assert "loopback" in announced
    assert stack.url in announced

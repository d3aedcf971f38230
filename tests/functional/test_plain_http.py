"""The plain-HTTP listener: 308 to the same path on HTTPS for everything; the Authorization
header is never echoed or logged; a valid key seen there is revoked (or, by choice, only
reported) and the event recorded, so a client that follows the redirect gets 401."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from tests.support.conformance import Reply
from tests.support.harness import Stack
from tests.support.ports import free_port
from tests.support.tls import client_context, self_signed

MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def policy() -> str:
    return "revoke"


@pytest.fixture
def config(tls_files: tuple[Path, Path], policy: str) -> dict[str, Any]:
    cert, key = tls_files
    return {
        "listener": {
            "tls_cert": str(cert),
            "tls_key": str(key),
            "plain_http_port": free_port(),
            "exposed_key_policy": policy,
        }
    }


def _plain_url(stack: Stack) -> str:
    host, port = stack.server.bound[1]
    return f"http://{host}:{port}"


def _https_port(stack: Stack) -> int:
    return stack.server.bound[0][1]


async def _plain(
    stack: Stack, method: str, path: str, headers: dict[str, str] | None = None, **kw: Any
) -> Reply:
    async with stack.http.request(
        method, _plain_url(stack) + path, headers=headers, allow_redirects=False, **kw
    ) as response:
        return Reply(response.status, response.headers, await response.read())


async def _https(stack: Stack, cert: Path, path: str, key: str) -> int:
    connector = aiohttp.TCPConnector(ssl=client_context(cert))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(stack.url + path, headers={"Authorization": f"Bearer {key}"}) as response,
    ):
        return response.status


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/models", None),
        ("POST", "/v1/chat/completions", {"model": "gpt-oss-120b", "messages": MSG}),
        ("POST", "/v1/audio/transcriptions", None),
        ("GET", "/", None),
        ("GET", "/no/such/path?x=1&y=%20z", None),
        ("DELETE", "/v1/responses", None),
    ],
)
async def test_everything_is_redirected_to_https(
    stack: Stack, method: str, path: str, body: dict[str, Any] | None
) -> None:
    reply = await _plain(stack, method, path, json=body)
    assert reply.status == 308
    assert reply.headers["Location"] == f"https://127.0.0.1:{_https_port(stack)}{path}"
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "code"}
    assert error["code"] == "https_required"
    assert "HTTPS" in error["message"]


async def test_a_valid_key_is_revoked_and_recorded(
    stack: Stack, tls_files: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    account_id, key = await stack.account_and_key()
    assert await _https(stack, tls_files[0], "/v1/models", key) == 200
    caplog.set_level(logging.DEBUG)
    reply = await _plain(
        stack,
        "POST",
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "gpt-oss-120b", "messages": MSG},
    )
    assert reply.status == 308
    assert "revoked" in reply.json()["error"]["message"]
    # never echoed, never logged
    assert key not in reply.body.decode()
    assert all(key not in value for value in reply.headers.values())
    for record in caplog.records:
        assert key not in record.getMessage()
        assert key not in repr(record.__dict__)
    # the client that follows the redirect with the same header arrives unauthenticated
    assert await _https(stack, tls_files[0], "/v1/models", key) == 401
    [record] = await stack.runtime.keys.list(account_id)
    assert not record.is_active
    events = await stack.runtime.db.audit.list(account_id=account_id, action="key.exposed")
    assert len(events) == 1
    assert events[0]["key_id"] == record.id
    assert events[0]["details"]["policy"] == "revoke"
    assert key not in repr(events)
    assert await stack.runtime.db.audit.list(account_id=account_id, action="key.revoke")
    assert await stack.sim_journal() == []


async def test_the_sdk_following_the_redirect_gets_401(
    stack: Stack, tls_files: tuple[Path, Path]
) -> None:
    account_id, key = await stack.account_and_key()
    sdk = openai.AsyncOpenAI(
        base_url=_plain_url(stack) + "/v1",
        api_key=key,
        max_retries=0,
        http_client=openai.DefaultAsyncHttpxClient(verify=client_context(tls_files[0])),
    )
    try:
        with pytest.raises(openai.AuthenticationError) as caught:
            await sdk.chat.completions.create(model="gpt-oss-120b", messages=MSG)  # type: ignore[arg-type]
    finally:
        await sdk.close()
    assert caught.value.code == "invalid_api_key"
    assert caught.value.response.url.scheme == "https"
    [record] = await stack.runtime.keys.list(account_id)
    assert not record.is_active
    assert await _https(stack, tls_files[0], "/v1/models", key) == 401


@pytest.mark.parametrize("policy", ["warn"])
async def test_warn_policy_keeps_the_key(stack: Stack, tls_files: tuple[Path, Path]) -> None:
    account_id, key = await stack.account_and_key()
    reply = await _plain(stack, "GET", "/v1/models", headers={"Authorization": f"Bearer {key}"})
    assert reply.status == 308
    assert "rotate" in reply.json()["error"]["message"]
    assert key not in reply.body.decode()
    assert await _https(stack, tls_files[0], "/v1/models", key) == 200
    [record] = await stack.runtime.keys.list(account_id)
    assert record.is_active
    [event] = await stack.runtime.db.audit.list(account_id=account_id, action="key.exposed")
    assert event["details"]["policy"] == "warn"


@pytest.mark.parametrize(
    "header",
    ["Bearer qbt_not-a-key", "Bearer sk-something", "Basic dXNlcjpwYXNz", "Bearer "],
)
async def test_other_credentials_are_only_redirected(stack: Stack, header: str) -> None:
    account_id, key = await stack.account_and_key()
    reply = await _plain(stack, "GET", "/v1/models", headers={"Authorization": header})
    assert reply.status == 308
    assert "revoked" not in reply.json()["error"]["message"]
    assert header not in reply.body.decode()
    assert await stack.runtime.db.audit.list(action="key.exposed") == []
    [record] = await stack.runtime.keys.list(account_id)
    assert record.is_active
    assert key


async def test_a_revoked_key_is_not_recorded_twice(stack: Stack) -> None:
    account_id, key = await stack.account_and_key()
    for _ in range(2):
        reply = await _plain(stack, "GET", "/v1/models", headers={"Authorization": f"Bearer {key}"})
        assert reply.status == 308
    events = await stack.runtime.db.audit.list(account_id=account_id, action="key.exposed")
    assert len(events) == 1

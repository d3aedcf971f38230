"""The public listener serving TLS from the configured certificate and key."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from bastion.errors import ConfigError
from bastion.http.server import check_listener
from tests.support.harness import Stack
from tests.support.tls import client_context, self_signed

MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def config(tls_files: tuple[Path, Path]) -> dict[str, Any]:
    cert, key = tls_files
    return {"listener": {"tls_cert": str(cert), "tls_key": str(key)}}


def _sdk(stack: Stack, key: str, cert: Path) -> openai.AsyncOpenAI:
    http_client = openai.DefaultAsyncHttpxClient(verify=client_context(cert))
    return stack.client(key, http_client=http_client)


async def test_the_sdk_over_tls(stack: Stack, tls_files: tuple[Path, Path]) -> None:
    assert stack.url.startswith("https://127.0.0.1:")
    _, key = await stack.account_and_key()
    client = _sdk(stack, key, tls_files[0])
    reply = await client.chat.completions.create(model="gpt-oss-120b", messages=MSG, max_tokens=3)  # type: ignore[arg-type]
    assert reply.model == "gpt-oss-120b"
    chunks = [
        chunk
        async for chunk in await client.chat.completions.create(
            model="gpt-oss-120b",
            messages=MSG,  # type: ignore[arg-type]
            max_tokens=3,
            stream=True,
        )
    ]
    assert chunks[-1].choices[0].finish_reason is not None
    assert [m.id for m in (await client.models.list()).data]


async def test_an_untrusted_certificate_is_refused_by_the_client(
    stack: Stack, tls_files: tuple[Path, Path]
) -> None:
    _, key = await stack.account_and_key()
    client = stack.client(key)  # default trust store: the self-signed cert is unknown
    with pytest.raises(openai.APIConnectionError):
        await client.models.list()


async def test_plain_http_on_the_tls_port_gets_no_answer(stack: Stack) -> None:
    host, port = stack.server.bound[0]
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer qbt_x\r\n\r\n")
    await writer.drain()
    async with asyncio.timeout(10):  # a guard against hanging, not a timing assertion
        answer = await reader.read(1024)
    writer.close()
    assert not answer.startswith(b"HTTP/")


async def test_tls_negotiates_http_1_1(stack: Stack, tls_files: tuple[Path, Path]) -> None:
    host, port = stack.server.bound[0]
    context = client_context(tls_files[0])
    context.set_alpn_protocols(["h2", "http/1.1"])
    _, writer = await asyncio.open_connection(host, port, ssl=context)
    tls = writer.get_extra_info("ssl_object")
    assert isinstance(tls, ssl.SSLObject)
    assert tls.selected_alpn_protocol() == "http/1.1"
    assert tls.version() in ("TLSv1.2", "TLSv1.3")
    writer.close()


async def test_request_id_and_errors_over_tls(stack: Stack, tls_files: tuple[Path, Path]) -> None:
    connector = aiohttp.TCPConnector(ssl=client_context(tls_files[0]))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(stack.url + "/v1/models") as response,
    ):
        assert response.status == 401
        assert response.headers["x-request-id"]


def test_plain_http_off_loopback_is_refused_at_start(stack_settings: Any) -> None:
    settings = stack_settings
    exposed = replace(settings, listener=replace(settings.listener, host="0.0.0.0"))
    with pytest.raises(ConfigError) as caught:
        check_listener(exposed)
    assert settings.file in str(caught.value)
    assert "listener" in str(caught.value)
    # with TLS, or behind listed proxies, it is accepted
    check_listener(
        replace(
            exposed,
            listener=replace(exposed.listener, tls_cert=Path("c"), tls_key=Path("k")),
        )
    )
    import ipaddress

    check_listener(
        replace(
            exposed,
            listener=replace(
                exposed.listener, trusted_proxies=(ipaddress.ip_network("10.0.0.0/8"),)
            ),
        )
    )
    check_listener(replace(settings, listener=replace(settings.listener, host="::1")))


@pytest.fixture
def stack_settings(tmp_path: Path) -> Any:
    from tests.support.harness import make_settings

    return make_settings(tmp_path, "http://127.0.0.1:9")

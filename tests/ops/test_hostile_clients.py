"""Slow and hostile clients: receipt deadlines (slowloris, slow bodies), header limits, idle
keep-alive, a raw-socket request-smuggling corpus, and upstream redirects never followed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from aiohttp import web

from tests.ops.conftest import ADMIN, scrape
from tests.support.harness import Stack

DEADLINE_S = 0.3
HOSTILE: dict[str, Any] = {
    **ADMIN,
    "listener": {
        "header_timeout_s": DEADLINE_S,
        "body_timeout_s": DEADLINE_S,
        "keepalive_timeout_s": DEADLINE_S,
    },
}


@pytest.fixture
def config() -> dict[str, Any]:
    return HOSTILE


class Handled(logging.Handler):
    """The paths the gateway actually handled (its one log line per request)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.paths: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "request":
            self.paths.append(str(getattr(record, "path", "")))


@pytest.fixture
def handled() -> Iterator[Handled]:
    handler = Handled()
    logger = logging.getLogger("bastion.request")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


async def _connect(stack: Stack) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = stack.server.bound[0]
    return await asyncio.open_connection(host, port)


async def _read_all(reader: asyncio.StreamReader, limit_s: float = 5.0) -> tuple[bytes, bool]:
    """Everything the server sends until it closes; (data, closed within the bound)."""
    data = b""
    try:
        async with asyncio.timeout(limit_s):
            while chunk := await reader.read(65536):
                data += chunk
    except TimeoutError:
        return data, False
    except ConnectionError:
        pass
    return data, True


LENGTH = b"content-length:"


def _responses(data: bytes) -> list[tuple[int, bytes]]:
    """(status, body) of each HTTP response in a raw byte stream (Content-Length framed)."""
    out = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ")[1])
        lengths = [int(line.split(b":")[1]) for line in lines if line.lower().startswith(LENGTH)]
        length = lengths[0] if lengths else 0
        out.append((status, rest[:length]))
        data = rest[length:]
    return out


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


def _timed_out(data: bytes) -> None:
    """A 408 in the envelope — or nothing, when the client's own next byte, sent after the
    server closed, drew a reset that discarded the unread 408 (TCP does that)."""
    if not data:
        return
    [(status, body)] = _responses(data)
    assert status == 408
    assert orjson.loads(body)["error"]["code"] == "request_timeout"


async def _trickle(writer: asyncio.StreamWriter, data: bytes, gap_s: float = 0.02) -> None:
    """Send one byte at a time, forever faster than any idle timeout would notice."""
    try:
        for byte in data:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(gap_s)
    except ConnectionError:
        return


# -- receipt deadlines --------------------------------------------------------------------


async def test_slowloris_headers_are_cut_at_the_deadline_while_others_are_served(
    stack: Stack,
) -> None:
    _, key = await stack.account_and_key()
    slow = [await _connect(stack) for _ in range(20)]
    endless = b"GET /v1/models HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 10_000
    trickles = [asyncio.ensure_future(_trickle(writer, endless)) for _, writer in slow]
    # meanwhile, normal traffic is served
    client = stack.client(key)
    for _ in range(10):
        assert (await client.models.list()).data
    for reader, writer in slow:
        data, closed = await _read_all(reader)
        assert closed, "a slowloris connection outlived its header deadline"
        _timed_out(data)
        await _close(writer)
    for task in trickles:
        task.cancel()
    await asyncio.gather(*trickles, return_exceptions=True)
    metrics = await scrape(stack)
    assert metrics.value("bastion_http_protocol_errors_total", reason="header_timeout") == 20


async def test_a_connection_that_never_sends_is_closed(stack: Stack) -> None:
    reader, writer = await _connect(stack)
    data, closed = await _read_all(reader)
    assert closed
    assert _responses(data)[0][0] == 408
    await _close(writer)


async def test_slow_body_is_cut_at_the_deadline(stack: Stack, handled: Handled) -> None:
    _, key = await stack.account_and_key()
    reader, writer = await _connect(stack)
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {key}\r\nContent-Length: 10000\r\n\r\n".encode()
    )
    trickle = asyncio.ensure_future(_trickle(writer, b"{" + b" " * 9999))
    data, closed = await _read_all(reader)
    trickle.cancel()
    await asyncio.gather(trickle, return_exceptions=True)
    assert closed
    _timed_out(data)
    await _close(writer)
    for _ in range(100):  # the cancelled handler logs its line as it unwinds
        if handled.paths:
            break
        await asyncio.sleep(0.01)
    assert handled.paths == ["/v1/chat/completions"]
    metrics = await scrape(stack)
    assert metrics.value("bastion_http_protocol_errors_total", reason="body_timeout") == 1
    assert metrics.by("bastion_requests_total", "endpoint", "status") == {("chat", "408"): 1}
    assert metrics.value("bastion_requests_in_flight") == 0


async def test_a_body_that_arrives_in_time_is_served(stack: Stack) -> None:
    """The body deadline covers receipt only: a fast body and a slow answer are fine."""
    await stack.sim_control(tokens_per_second=20, first_token_ms=0)
    _, key = await stack.account_and_key()
    reply = await stack.client(key).chat.completions.create(
        model="gpt-oss-20b",
        messages=[{"role": "user", "content": "take your time"}],
        max_tokens=12,  # ≈ 0.6 s of generation: longer than every receipt deadline
    )
    assert reply.choices[0].message.content


async def test_idle_keep_alive_connections_are_closed(stack: Stack) -> None:
    reader, writer = await _connect(stack)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    data, closed = await _read_all(reader)
    assert closed, "an idle kept-alive connection was never closed"
    [(status, _)] = _responses(data)
    assert status == 200
    await _close(writer)


# -- header size and count ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "request_bytes", "expected"),
    [
        ("100 headers", b"X-H: v\r\n" * 99, 200),
        ("101 headers", b"X-H: v\r\n" * 100, 400),
        ("a header value of 8190 bytes", b"X-Big: " + b"a" * 8190 + b"\r\n", 200),
        ("a header value of 8191 bytes", b"X-Big: " + b"a" * 8191 + b"\r\n", 400),
    ],
)
async def test_header_size_and_count_limits(
    stack: Stack, name: str, request_bytes: bytes, expected: int
) -> None:
    reader, writer = await _connect(stack)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + request_bytes + b"\r\n")
    data, _ = await _read_all(reader, limit_s=2)
    status, body = _responses(data)[0]
    assert status == expected, name
    if expected == 400:
        assert orjson.loads(body)["error"]["code"] == "invalid_request"
    await _close(writer)


# -- request smuggling ---------------------------------------------------------------------

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
POST = b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\n"
CORPUS = {
    "CL.TE": POST + b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "TE.CL": POST
    + b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\n"
    + SMUGGLED
    + b"x=1\r\n0\r\n\r\n",
    "duplicate Content-Length": POST
    + b"Content-Length: 0\r\nContent-Length: 37\r\n\r\n"
    + SMUGGLED,
    "duplicate equal Content-Length": POST
    + b"Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}"
    + SMUGGLED,
    "Content-Length list": POST + b"Content-Length: 2, 2\r\n\r\n{}" + SMUGGLED,
    "Content-Length sign": POST + b"Content-Length: +2\r\n\r\n{}" + SMUGGLED,
    "Content-Length negative": POST + b"Content-Length: -1\r\n\r\n" + SMUGGLED,
    "Content-Length with a space": POST + b"Content-Length: 3 7\r\n\r\n" + SMUGGLED,
    "space before colon": POST + b"Content-Length : 37\r\n\r\n" + SMUGGLED,
    "TE with space before colon": POST
    + b"Content-Length: 4\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"
    + SMUGGLED,
    "TE with vertical tab": POST
    + b"Content-Length: 4\r\nTransfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n"
    + SMUGGLED,
    "TE with non-breaking space": POST
    + b"Content-Length: 4\r\nTransfer-Encoding: \xa0chunked\r\n\r\n0\r\n\r\n"
    + SMUGGLED,
    "TE xchunked": POST + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "TE chunked, identity": POST
    + b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"
    + SMUGGLED,
    "TE identity, chunked with CL": POST
    + b"Content-Length: 4\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n"
    + SMUGGLED,
    "two TE headers": POST
    + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n"
    + SMUGGLED,
    "TE on HTTP/1.0": b"POST /v1/embeddings HTTP/1.0\r\nHost: x\r\n"
    + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    + SMUGGLED,
    "obs-fold": POST
    + b"Content-Length: 0\r\nX-Folded: a\r\n b\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    + SMUGGLED,
    "obs-fold into TE": POST
    + b"Transfer-Encoding: identity\r\n chunked\r\n\r\n0\r\n\r\n"
    + SMUGGLED,
    "bare LF line endings": b"POST /v1/embeddings HTTP/1.1\nHost: x\nContent-Length: 0\n\n"
    + SMUGGLED,
    "bare LF before TE": b"POST /v1/embeddings HTTP/1.1\r\nHost: x\nTransfer-Encoding: chunked"
    + b"\r\nContent-Length: 4\r\n\r\n0\r\n\r\n"
    + SMUGGLED,
    "bare CR": b"POST /v1/embeddings HTTP/1.1\r\nHost: x\rContent-Length: 0\r\n\r\n" + SMUGGLED,
    "negative chunk size": POST + b"Transfer-Encoding: chunked\r\n\r\n-1\r\n\r\n" + SMUGGLED,
    "chunk size with sign": POST
    + b"Transfer-Encoding: chunked\r\n\r\n+2\r\n{}\r\n0\r\n\r\n"
    + SMUGGLED,
    "chunk size 0x": POST + b"Transfer-Encoding: chunked\r\n\r\n0x2\r\n{}\r\n0\r\n\r\n" + SMUGGLED,
    "chunk size overflow": POST
    + b"Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF1\r\n{}\r\n0\r\n\r\n"
    + SMUGGLED,
    "chunk size underscore": POST
    + b"Transfer-Encoding: chunked\r\n\r\n1_0\r\n"
    + b"a" * 16
    + b"\r\n0\r\n\r\n"
    + SMUGGLED,
    "LF inside a chunk extension": POST
    + b"Transfer-Encoding: chunked\r\n\r\n2;a\nb\r\n{}\r\n0\r\n\r\n"
    + SMUGGLED,
    "bad chunk terminator": POST
    + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n"
    + SMUGGLED,
    "bare LF chunk terminator": POST
    + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\n0\r\n\r\n"
    + SMUGGLED,
    "NUL in a header value": POST + b"X-A: a\x00b\r\nContent-Length: 0\r\n\r\n" + SMUGGLED,
    "over-long request line": b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n" + SMUGGLED,
    "HTTP/1.2": b"GET /healthz HTTP/1.2\r\nHost: x\r\n\r\n" + SMUGGLED,
    "invalid method": b"G@T /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + SMUGGLED,
}


def test_the_c_parser_is_in_use() -> None:
    """The corpus below was checked against aiohttp's C parser (llhttp); the pure-Python
    fallback would need its own run."""
    from aiohttp import http_parser

    assert http_parser.HttpRequestParser is not http_parser.HttpRequestParserPy


async def test_smuggling_corpus_is_refused_without_desync(stack: Stack, handled: Handled) -> None:
    results = {}
    for name, payload in CORPUS.items():
        handled.paths.clear()
        reader, writer = await _connect(stack)
        writer.write(payload)
        data, closed = await _read_all(reader, limit_s=3)
        await _close(writer)
        responses = _responses(data)
        results[name] = [status for status, _ in responses]
        assert closed, f"{name}: the connection stayed open"
        assert len(responses) == 1, f"{name}: {results[name]}"
        status, body = responses[0]
        assert status == 400, f"{name}: {status}"
        assert orjson.loads(body) == {
            "error": {
                "message": orjson.loads(body)["error"]["message"],
                "type": "invalid_request_error",
                "code": "invalid_request",
            }
        }
        assert "/smuggled" not in handled.paths, f"{name}: the smuggled request was executed"
    metrics = await scrape(stack)
    assert metrics.value("bastion_http_protocol_errors_total", reason="bad_request") == len(CORPUS)


async def test_the_oracle_sees_a_second_request(stack: Stack, handled: Handled) -> None:
    """Controls: legitimate pipelining runs both requests (so the check above can see a second
    request), and a GET's declared body is read as a body, never as a request."""
    reader, writer = await _connect(stack)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + SMUGGLED)
    data, _ = await _read_all(reader, limit_s=2)
    await _close(writer)
    assert [status for status, _ in _responses(data)] == [200, 404]
    assert handled.paths == ["/healthz", "/smuggled"]

    handled.paths.clear()
    reader, writer = await _connect(stack)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 37\r\n\r\n" + SMUGGLED)
    data, _ = await _read_all(reader, limit_s=2)
    await _close(writer)
    assert [status for status, _ in _responses(data)] == [200]
    assert handled.paths == ["/healthz"]


# -- upstream redirects ----------------------------------------------------------------------


class Upstreams:
    """A model server that answers every request with a redirect to a second server, which
    counts whatever reaches it."""

    def __init__(self) -> None:
        self.status = 307
        self.attacker_hits: list[dict[str, str]] = []
        self.redirector_hits = 0
        self.attacker_url = ""

    async def redirect(self, request: web.Request) -> web.Response:
        self.redirector_hits += 1
        target = self.attacker_url + request.path
        return web.Response(status=self.status, headers={"Location": target})

    async def attacker(self, request: web.Request) -> web.Response:
        self.attacker_hits.append(dict(request.headers))
        return web.json_response({"stolen": True})


@pytest.fixture
async def upstreams() -> AsyncIterator[tuple[Upstreams, str]]:
    state = Upstreams()
    runners = []
    urls = []
    for handler in (state.redirect, state.attacker):
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        urls.append(f"http://127.0.0.1:{runner.addresses[0][1]}")
    state.attacker_url = urls[1]
    yield state, urls[0]
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
def config(upstreams: tuple[Upstreams, str]) -> dict[str, Any]:  # noqa: F811
    _, redirector = upstreams
    return {
        **HOSTILE,
        "upstreams": {
            "redirector": {
                "base_url": redirector,
                "api_key": "operator-credential-never-to-leave",
                "circuit_failures": 100,
            }
        },
        "models": {
            "redirected-model": {
                "category": "chat",
                "deployments": [{"upstream": "redirector"}],
                "price": {"input_per_mtok": "1", "output_per_mtok": "1"},
            }
        },
    }


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_upstream_redirects_are_never_followed(
    stack: Stack, upstreams: tuple[Upstreams, str], status: int
) -> None:
    state, _ = upstreams
    state.status = status
    _, key = await stack.account_and_key()
    client = stack.client(key)
    with pytest.raises(openai.APIStatusError) as failed:
        await client.chat.completions.create(
            model="redirected-model", messages=[{"role": "user", "content": "hi"}]
        )
    assert failed.value.status_code == 502
    assert "redirect" in str(failed.value.message)
    with pytest.raises(openai.APIStatusError):
        await client.chat.completions.create(
            model="redirected-model", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    assert state.redirector_hits == 2
    assert state.attacker_hits == []
    async with aiohttp.ClientSession() as http, http.get(f"{stack.url}/readyz") as ready:
        assert ready.status == 200

"""One structured JSON line per request, with everything an operator needs and no secret."""

from __future__ import annotations

import asyncio
import io
import logging
import warnings
from collections.abc import Iterator

import orjson
import pytest

from bastion.observability.logging import JsonFormatter, redact, redact_text
from tests.support.harness import Stack


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("bastion.request")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(level)


def _records(stream: io.StringIO) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


async def test_one_line_per_request_with_ids_timings_usage_and_cost(
    stack: Stack, lines: io.StringIO
) -> None:
    account, key = await stack.account_and_key()
    client = stack.client(key)
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-oss-20b", messages=[{"role": "user", "content": "hello"}], max_tokens=5
    )
    raw.parse()
    async with client.chat.completions.with_streaming_response.create(
        model="gpt-oss-20b",
        messages=[{"role": "user", "content": "hello"}],
        max_tokens=5,
        stream=True,
    ) as streamed:
        stream_id = streamed.headers["x-request-id"]
        async for _chunk in await streamed.parse():
            pass
    for _ in range(200):  # the stream's line is written as its handler returns (bounded wait)
        if len(_records(lines)) == 2:
            break
        await asyncio.sleep(0.01)
    unary, stream = _records(lines)
    for record, request_id in ((unary, raw.headers["x-request-id"]), (stream, stream_id)):
        assert record["request_id"] == request_id
        assert record["msg"] == "request"
        assert record["logger"] == "bastion.request"
        assert record["account_id"] == account
        assert str(record["key_id"]).startswith("key_")
        assert record["model"] == "gpt-oss-20b"
        assert record["endpoint"] == "chat"
        assert record["method"] == "POST"
        assert record["path"] == "/v1/chat/completions"
        assert record["status"] == 200
        timings = ("duration_ms", "ttfb_ms", "upstream_ms", "overhead_ms", "admit_ms", "commit_ms")
        for timing in timings:
            assert isinstance(record[timing], float), timing
        assert record["upstream_ms"] <= record["duration_ms"]  # type: ignore[operator]
        # admission and the commit's wait are parts of the overhead (each rounded to 1 µs)
        parts = record["admit_ms"] + record["commit_ms"]  # type: ignore[operator]
        assert parts <= record["overhead_ms"] + 0.002  # type: ignore[operator]
        assert record["cost_micros"] > 0  # type: ignore[operator]
        usage = record["usage"]
        assert isinstance(usage, dict)
        assert usage["input_tokens"] > 0
        assert usage["output_tokens"] > 0
        assert key not in orjson.dumps(record).decode()


async def test_refused_requests_are_logged_with_their_code(
    stack: Stack, lines: io.StringIO
) -> None:
    async with stack.http.post(
        f"{stack.url}/v1/embeddings", headers={"Authorization": "Bearer qbt_nope"}, json={}
    ) as response:
        assert response.status == 401
        request_id = response.headers["x-request-id"]
    [record] = _records(lines)
    assert record["request_id"] == request_id
    assert record["status"] == 401
    assert record["error"] == "invalid_api_key"
    assert record["endpoint"] == "embeddings"
    assert "qbt_nope" not in lines.getvalue()


def test_redaction_of_text_and_fields() -> None:
    assert redact_text("Authorization: Bearer sk-abc.def") == "Authorization: Bearer [redacted]"
    assert redact_text("Authorization: Basic dXNlcjpwYXNzd29yZA==") == (
        "Authorization: Basic [redacted]"
    )
    assert redact_text("postgresql://bastion:s3cret@db:5432/bastion") == (
        "postgresql://bastion:[redacted]@db:5432/bastion"
    )
    assert redact_text("redis://:pw@cache:6379/0") == "redis://:[redacted]@cache:6379/0"
    assert "qbt_" + "A" * 38 not in redact_text("key qbt_" + "A" * 38)
    assert redact({"password": "x", "nested": {"otp": "123456", "note": "Bearer t0k3n"}}) == {
        "password": "[redacted]",
        "nested": {"otp": "[redacted]", "note": "Bearer [redacted]"},
    }


async def test_the_access_line_fast_path_writes_what_logging_would() -> None:
    """The per-request line skips the logging machinery when the configured JSON handler is
    its only destination; the line is the same, redaction included."""
    from bastion.observability import logging as bastion_logging
    from bastion.settings.model import LogSettings

    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    saved_fast = bastion_logging._fast
    stream = io.StringIO()
    try:
        bastion_logging.configure(LogSettings(level="INFO", format="json"), stream)
        logger = logging.getLogger("bastion.request")
        fields = {"request_id": "req_1", "status": 200, "path": "/v1/x qbt_abcdefgh12345678"}
        bastion_logging.info_line(logger, "request", dict(fields))
        logger.info("request", extra=dict(fields))
        root.handlers[0].flush()
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        bastion_logging._fast = saved_fast
    fast, ordinary = (orjson.loads(line) for line in stream.getvalue().splitlines())
    assert fast.pop("ts")[:4] == ordinary.pop("ts")[:4]
    assert fast == ordinary
    assert fast["path"] == "/v1/x qbt_[redacted]"


def test_malformed_multipart_headers_leave_no_line_and_no_memory() -> None:
    """aiohttp warns once per distinct malformed part header, keeping each in a registry:
    a client's crafted upload would grow stderr and memory without bound.  The configured
    process ignores those warnings."""
    import aiohttp.multipart
    from aiohttp.multipart import parse_content_disposition

    from bastion.observability import logging as bastion_logging
    from bastion.settings.model import LogSettings

    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    saved_fast = bastion_logging._fast
    registry = vars(aiohttp.multipart).setdefault("__warningregistry__", {})
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("default")
            parse_content_disposition('form-data; before"')
            assert len(seen) == 1  # what an unconfigured process does
            before = len(registry)
            bastion_logging.configure(LogSettings(level="INFO", format="json"), io.StringIO())
            for n in range(200):
                assert parse_content_disposition(f'form-data; n{n}"') == (None, {})
                parse_content_disposition(f"form-data; name*=bad'{n}")
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        bastion_logging._fast = saved_fast
    assert len(seen) == 1
    assert len(registry) <= before

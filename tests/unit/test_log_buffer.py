"""Log lines are written in batches, warnings at once, and nothing waits long."""

from __future__ import annotations

import asyncio
import io
import logging

from bastion.observability.logging import BufferedStreamHandler, JsonFormatter


def _logger(stream: io.StringIO) -> tuple[logging.Logger, BufferedStreamHandler]:
    handler = BufferedStreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(f"test.buffer.{id(stream)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, handler


async def test_info_lines_wait_for_the_timer_then_leave_together() -> None:
    stream = io.StringIO()
    logger, _ = _logger(stream)
    logger.info("one", extra={"key": "qbt_" + "A" * 38})
    logger.info("two")
    assert stream.getvalue() == ""
    for _ in range(100):
        if stream.getvalue():
            break
        await asyncio.sleep(BufferedStreamHandler.FLUSH_AFTER_S / 2)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert "qbt_[redacted]" in lines[0]


async def test_a_warning_flushes_everything_pending_at_once() -> None:
    stream = io.StringIO()
    logger, _ = _logger(stream)
    logger.info("before")
    logger.warning("now")
    assert len(stream.getvalue().splitlines()) == 2


def test_without_an_event_loop_lines_are_written_at_once() -> None:
    stream = io.StringIO()
    logger, _ = _logger(stream)
    logger.info("cli")
    assert "cli" in stream.getvalue()

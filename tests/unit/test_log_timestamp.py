"""The JSON log line's timestamp: UTC, millisecond precision, remembered per millisecond and
per second without going stale when either moves on."""

from __future__ import annotations

from bastion.observability.logging import JsonFormatter

NEW_YEAR_2026 = 1_767_225_600.0


def test_milliseconds_and_seconds_move_on() -> None:
    stamp = JsonFormatter()._timestamp
    assert stamp(NEW_YEAR_2026 + 0.1234) == "2026-01-01T00:00:00.123Z"
    assert stamp(NEW_YEAR_2026 + 0.1236) == "2026-01-01T00:00:00.123Z"  # the same millisecond
    assert stamp(NEW_YEAR_2026 + 0.1245) == "2026-01-01T00:00:00.124Z"
    assert stamp(NEW_YEAR_2026 + 0.9999) == "2026-01-01T00:00:00.999Z"
    assert stamp(NEW_YEAR_2026 + 1.0005) == "2026-01-01T00:00:01.000Z"
    assert stamp(NEW_YEAR_2026 - 0.5) == "2025-12-31T23:59:59.500Z"  # a clock stepped back
    assert stamp(NEW_YEAR_2026 + 61.007) == "2026-01-01T00:01:01.007Z"

"""The access-log breakdown of the benchmark's fixed-rate phase, and its table."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from bench.breakdown import breakdown, log_offset, read_lines
from bench.report import parts_table


def _line(ts: str, *, status: int = 200, **timings: float) -> bytes:
    return orjson.dumps({"ts": ts, "msg": "request", "status": status, **timings}) + b"\n"


def test_only_the_lines_written_after_the_offset_are_read(tmp_path: Path) -> None:
    log = tmp_path / "bastion.log"
    assert log_offset(log) == 0  # no log yet
    log.write_bytes(_line("2026-12-04T00:00:00.000Z", duration_ms=9.0) + b"bastion: listening\n")
    offset = log_offset(log)
    with log.open("ab") as out:
        out.write(_line("2026-12-04T00:00:01.000Z", duration_ms=1.0))
        out.write(b'{"msg":"store unavailable"}\n{"msg":"request", cut')
    assert [line["duration_ms"] for line in read_lines(log, offset)] == [1.0]
    assert read_lines(tmp_path / "missing.log", 0) == []


def test_the_overhead_is_split_into_admission_commit_and_own_work() -> None:
    timings = {"duration_ms": 3.0, "overhead_ms": 2.0, "admit_ms": 0.5, "commit_ms": 1.0}
    lines = [
        orjson.loads(_line("2026-12-04T00:00:00.500Z", **{**timings, "duration_ms": 50.0})),
        orjson.loads(_line("2026-12-04T00:00:01.000Z", **timings)),
        orjson.loads(_line("2026-12-04T00:00:02.000Z", **{**timings, "commit_ms": 1.3})),
        orjson.loads(_line("2026-12-04T00:00:03.000Z", status=429, admit_ms=0.4)),
        orjson.loads(_line("2026-12-04T00:00:04.000Z", duration_ms=1.0)),  # not charged
    ]
    since = 1_796_342_400.0 + 1.0  # 2026-12-04T00:00:01Z: the warm-up's line is left out
    parts = breakdown(lines, since)
    assert parts["duration_ms"]["count"] == 2
    assert parts["duration_ms"]["max"] == 3.0
    assert parts["commit_ms"]["max"] == 1.3
    assert parts["own_ms"]["max"] == pytest.approx(0.5)
    assert parts["own_ms"]["p50"] == pytest.approx(0.2)  # 2.0 - 0.5 - 1.3, the lower of two
    assert breakdown(lines)["duration_ms"]["count"] == 3


def test_the_table_sets_each_bastion_beside_its_stores_alone() -> None:
    summary = {"count": 5800.0, "p50": 1.0, "p99": 3.25}
    results = {
        "targets": {
            "floor": {"label": "floor", "latency": {"latency_ms": summary}},
            "bastion-scaled": {
                "label": "Bastion scaled out",
                "latency": {"gateway_log": {"duration_ms": summary, "commit_ms": summary}},
                "store_probe": {
                    "postgres_commit_ms": summary,
                    "settlement_ms": {"count": 2000.0, "p50": 0.8, "p99": 1.9},
                },
            },
        }
    }
    header, rule, row = parts_table(results)
    assert header.count("|") == rule.count("|")
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[:3] == ["Bastion scaled out", "5,800", "1.00 / 3.25"]
    assert cells[3] == "–"  # no overhead figure in this run
    assert cells[7] == "1.00 / 3.25"
    assert cells[8] == "0.80 / 1.90"
    assert cells[9] == "–"  # no Redis figure
    assert parts_table({"targets": {"floor": {}}}) == []

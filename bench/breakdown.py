"""Where Bastion's time went at the fixed rate, read from its own access log.

The load generator sees each request end to end; Bastion's access line splits the same
request into the upstream phase and the gateway's overhead, and the overhead into admission
(``admit_ms``: scaled out, the Redis round trip), the wait for the charge's group commit
(``commit_ms``: scaled out, PostgreSQL's commit and its flush to disk) and the rest, the
gateway's own work.  Read beside the stores' own round trips measured alone
(:mod:`bench.storeprobe`), it tells a slow store from a slow gateway.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from bench.stats import summary

PARTS = ("duration_ms", "overhead_ms", "admit_ms", "commit_ms", "own_ms")


def log_offset(log: Path) -> int:
    """Where the log ends now: the phase's lines are the ones written after it."""
    return log.stat().st_size if log.exists() else 0


def read_lines(log: Path, offset: int) -> list[dict[str, Any]]:
    """The access lines (``msg`` = request) written to ``log`` since ``offset``."""
    if not log.exists():
        return []
    with log.open("rb") as handle:
        handle.seek(offset)
        data = handle.read()
    lines = []
    for raw in data.splitlines():
        if not raw.startswith(b"{") or b'"msg":"request"' not in raw:
            continue
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue  # a line cut by the copy or another writer
        if isinstance(line, dict):
            lines.append(line)
    return lines


def _epoch(ts: Any) -> float | None:
    if not isinstance(ts, str):
        return None
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def breakdown(lines: list[dict[str, Any]], since: float | None = None) -> dict[str, Any]:
    """Summaries (ms) of each part for the answered (200) requests that logged a charge's
    commit, ended at or after ``since`` (epoch seconds: the warm-up is left out).  ``own``
    is the overhead less admission and the commit's wait."""
    samples: dict[str, list[float]] = {part: [] for part in PARTS}
    for line in lines:
        if line.get("status") != 200:
            continue
        if since is not None:
            ended = _epoch(line.get("ts"))
            if ended is None or ended < since:
                continue
        values = [line.get(part) for part in PARTS[:4]]
        if not all(isinstance(v, int | float) for v in values):
            continue
        duration, overhead, admit, commit = (float(v) for v in values)
        own = max(0.0, overhead - admit - commit)
        for part, value in zip(PARTS, (duration, overhead, admit, commit, own), strict=True):
            samples[part].append(value)
    return {part: summary(values) for part, values in samples.items()}

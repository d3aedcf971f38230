"""Saturation with wrk (one thread, C): as many requests as the target answers, closed loop."""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.procs import boost, pinned

SCRIPT = Path(__file__).with_name("wrk") / "post.lua"


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    errors: dict[str, int]
    latency_ms: dict[str, float]
    cpu_share: float
    raw: str

    @property
    def rps(self) -> float:
        good = self.requests - self.errors.get("status", 0)
        return good / self.seconds if self.seconds else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "seconds": self.seconds,
            "rps": self.rps,
            "errors": self.errors,
            "latency_ms": self.latency_ms,
            "wrk_cpu_share": self.cpu_share,
        }


def run_wrk(
    url: str,
    body_file: Path,
    *,
    key: str = "",
    seconds: float,
    connections: int,
    cpus: str | None,
    pids_file: str | None = None,
) -> WrkResult:
    cmd = pinned(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "30s",
            "-s",
            str(SCRIPT),
            url,
        ],
        cpus,
    )
    env = {**os.environ, "BENCH_BODY_FILE": str(body_file), "BENCH_KEY": key}
    started = time.monotonic()
    popen = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    if pids_file:
        with open(pids_file, "a") as pids:
            pids.write(f"{popen.pid}\n")
    boost(popen.pid)
    assert popen.stdout is not None
    output = popen.stdout.read().decode(errors="replace")
    _, _status, usage = os.wait4(popen.pid, 0)
    popen.returncode = 0
    wall = time.monotonic() - started
    line = next((ln for ln in output.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{output[-2000:]}")
    data = json.loads(line[len("BENCH_JSON ") :])
    errors = {k: int(data[k]) for k in ("connect", "read", "write", "status", "timeout") if data[k]}
    return WrkResult(
        requests=int(data["requests"]),
        seconds=data["duration_us"] / 1e6,
        errors=errors,
        latency_ms={
            "p50": data["p50_us"] / 1000,
            "p90": data["p90_us"] / 1000,
            "p99": data["p99_us"] / 1000,
            "max": data["max_us"] / 1000,
        },
        cpu_share=(usage.ru_utime + usage.ru_stime) / wall if wall else 0.0,
        raw=output,
    )

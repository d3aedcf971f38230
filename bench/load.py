"""An open-loop load generator: requests leave on a fixed clock schedule, whatever the answers.

Each request leaves at its scheduled time whether or not earlier ones were answered (open
loop: a slow server cannot slow the sender, so there is no coordinated omission), and its
latency is measured from the moment it is sent; how late the generator itself sends is
reported as the scheduler's lag.  For streams it also records the time to the first body
byte and to the first content token.  Saturation is measured with
wrk (C, one thread); this generator is for fixed rates, where its own cost is small.

    python -m bench.load --url URL --body-file F --rate 200 --seconds 20 --out result.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.stats import schedule, summary

CONTENT_TOKEN = re.compile(rb'"content":\s?"[^"]')


@dataclass(slots=True)
class Shot:
    """One request's outcome (times in seconds from its scheduled start)."""

    status: int = 0
    error: str | None = None
    latency: float = 0.0
    first_byte: float | None = None
    first_token: float | None = None
    stream: bool = False


@dataclass(slots=True)
class Plan:
    url: str
    body: bytes
    stream_body: bytes | None
    stream_every: int
    headers: dict[str, str]
    rate: float
    seconds: float
    warmup_s: float
    timeout_s: float
    max_in_flight: int
    shots: list[Shot] = field(default_factory=list)


async def _one(session: aiohttp.ClientSession, plan: Plan, due: float, stream: bool) -> Shot:
    """One request; times count from the moment it is sent (the generator's own lateness is
    reported apart, as the scheduler's lag, and stays small at these rates)."""
    shot = Shot(stream=stream)
    body = plan.stream_body if stream and plan.stream_body is not None else plan.body
    clock = time.perf_counter
    due = clock()
    try:
        async with session.post(plan.url, data=body, headers=plan.headers) as response:
            shot.status = response.status
            seen = b""
            async for chunk in response.content.iter_any():
                now = clock()
                if shot.first_byte is None:
                    shot.first_byte = now - due
                if stream and shot.first_token is None:
                    seen = seen[-64:] + chunk
                    if CONTENT_TOKEN.search(seen):
                        shot.first_token = now - due
        shot.latency = clock() - due
        if shot.status != 200:
            shot.error = f"http_{shot.status}"
        elif stream and shot.first_token is None:
            shot.error = "stream_without_content"
    except TimeoutError:
        shot.error = "timeout"
        shot.latency = clock() - due
    except (aiohttp.ClientError, OSError) as exc:
        shot.error = type(exc).__name__
        shot.latency = clock() - due
    return shot


async def run(plan: Plan) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=plan.max_in_flight, force_close=False)
    timeout = aiohttp.ClientTimeout(total=plan.timeout_s)
    in_flight: set[asyncio.Task[Shot]] = set()
    results: list[tuple[float, Shot]] = []
    dropped = 0
    max_lag = 0.0
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, auto_decompress=False
    ) as session:
        start = time.perf_counter() + 0.05
        for index, due in enumerate(schedule(plan.rate, plan.seconds, start)):
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            max_lag = max(max_lag, time.perf_counter() - due)
            if len(in_flight) >= plan.max_in_flight:
                dropped += 1
                continue
            stream = plan.stream_every > 0 and index % plan.stream_every == 0
            task = asyncio.create_task(_one(session, plan, due, stream))
            in_flight.add(task)

            def done(t: asyncio.Task[Shot], due: float = due) -> None:
                in_flight.discard(t)
                if not t.cancelled():
                    results.append((due - start, t.result()))

            task.add_done_callback(done)
        if in_flight:
            await asyncio.wait(set(in_flight), timeout=plan.timeout_s)
        for task in list(in_flight):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*in_flight, return_exceptions=True)
        wall = time.perf_counter() - start
    return _report(plan, results, dropped, max_lag, wall)


def _ms(values: list[float]) -> dict[str, float]:
    return summary([v * 1000.0 for v in values])


def _report(
    plan: Plan, results: list[tuple[float, Shot]], dropped: int, max_lag: float, wall: float
) -> dict[str, Any]:
    measured = [shot for at, shot in results if at >= plan.warmup_s]
    ok = [s for s in measured if s.error is None]
    errors: dict[str, int] = {}
    for shot in measured:
        if shot.error is not None:
            errors[shot.error] = errors.get(shot.error, 0) + 1
    if dropped:
        errors["dropped_over_max_in_flight"] = dropped
    usage = resource.getrusage(resource.RUSAGE_SELF)
    unary = [s for s in ok if not s.stream]
    streams = [s for s in ok if s.stream]
    sent = len(measured) + dropped
    return {
        "rate": plan.rate,
        "seconds": plan.seconds,
        "warmup_s": plan.warmup_s,
        "sent": sent,
        "ok": len(ok),
        "errors": errors,
        "error_rate": (sent - len(ok)) / sent if sent else 0.0,
        "achieved_rate": len(ok) / max(1e-9, plan.seconds - plan.warmup_s),
        "latency_ms": _ms([s.latency for s in unary]),
        "stream_latency_ms": _ms([s.latency for s in streams]),
        "first_byte_ms": _ms([s.first_byte for s in streams if s.first_byte is not None]),
        "first_token_ms": _ms([s.first_token for s in streams if s.first_token is not None]),
        "scheduler_max_lag_ms": max_lag * 1000.0,
        "generator_cpu_s": usage.ru_utime + usage.ru_stime,
        "generator_wall_s": wall,
        "generator_cpu_share": (usage.ru_utime + usage.ru_stime) / wall if wall else 0.0,
    }


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--body-file", required=True, type=Path)
    parser.add_argument("--stream-body-file", type=Path, default=None)
    parser.add_argument(
        "--stream-every", type=int, default=0, help="every Nth request is a stream (0: none)"
    )
    parser.add_argument("--key", default="", help="bearer token")
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds not counted")
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--max-in-flight", type=int, default=2000)
    parser.add_argument("--out", type=Path, required=True)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    headers = {"Content-Type": "application/json"}
    if args.key:
        headers["Authorization"] = f"Bearer {args.key}"
    plan = Plan(
        url=args.url,
        body=args.body_file.read_bytes(),
        stream_body=args.stream_body_file.read_bytes() if args.stream_body_file else None,
        stream_every=args.stream_every,
        headers=headers,
        rate=args.rate,
        seconds=args.seconds,
        warmup_s=args.warmup,
        timeout_s=args.timeout,
        max_in_flight=args.max_in_flight,
    )
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    result = asyncio.run(run(plan))
    result["pid"] = os.getpid()
    args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

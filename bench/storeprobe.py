"""The stores' own round trips, alone, at the benchmark's fixed rate.

Bastion scaled out waits, per request, for one Redis round trip (admission) and for one
PostgreSQL commit (commit before completion: the charge is durable before the answer's last
bytes leave).  Those waits belong to the machine's services and disk, not to the gateway:
this probe measures them on their own, on the same services, right after the latency phase,
so the report can set Bastion's added latency beside what its stores alone cost.

- PostgreSQL: a one-row ``INSERT`` committed on its own (autocommit, asyncpg), into a table
  made for the probe in the run's database and dropped after: one round trip and one WAL
  flush, the least a durable write can cost there.
- PostgreSQL: Bastion's own settlement batch, ``bastion_settle`` with one charge (of one
  micro-unit, on the run's account and key) and one usage row, as the gateway sends it at a
  low rate: the same round trip and flush, plus the batch's own work (the balance, the
  ledger and usage rows with their indexes).  What the gateway's commit wait adds beyond
  it is queueing (behind the batch in flight) and scheduling.
- Redis: ``PING`` over a raw socket (no client library): the round trip alone.

Both on one schedule at the fixed rate, open loop (each due time from the start, never
drifting); latencies in ms.

    python -m bench.storeprobe --dsn postgresql://… --redis HOST:PORT --rate 200 \\
        --seconds 10 --out probe.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg

from bastion.core.records import Charge, RequestLogEntry
from bastion.storage.sql.pg_batch import SETTLE, charges_json, logs_json
from bench.stats import schedule, summary

TABLE = "bench_store_probe"


async def _redis_round_trip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"*1\r\n$4\r\nPING\r\n")
    line = await reader.readline()
    if line != b"+PONG\r\n":
        raise RuntimeError(f"unexpected reply from Redis: {line[:40]!r}")


async def probe(dsn: str, redis: str, rate: float, seconds: float) -> dict[str, Any]:
    host, _, port = redis.rpartition(":")
    conn = await asyncpg.connect(dsn)
    reader, writer = await asyncio.open_connection(host, int(port))
    commits: list[float] = []
    settlements: list[float] = []
    round_trips: list[float] = []
    try:
        owner = await conn.fetchrow("SELECT id, account_id FROM api_keys ORDER BY id LIMIT 1")
        if owner is None:
            raise RuntimeError("the run's database has no key to settle against")
        settle = _Settlements(str(owner["account_id"]), str(owner["id"]))
        await conn.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (id bigserial PRIMARY KEY, t text)")
        for _ in range(20):  # warm: connections, plans, caches
            await conn.execute(f"INSERT INTO {TABLE} (t) VALUES ('warm')")
            await conn.fetch(SETTLE, *settle.next())
            await _redis_round_trip(reader, writer)
        start = time.perf_counter()
        for due in schedule(rate, seconds, start):
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            batch = settle.next()
            began = time.perf_counter()
            await conn.execute(f"INSERT INTO {TABLE} (t) VALUES ('probe')")
            committed = time.perf_counter()
            await conn.fetch(SETTLE, *batch)
            settled = time.perf_counter()
            await _redis_round_trip(reader, writer)
            commits.append((committed - began) * 1000)
            settlements.append((settled - committed) * 1000)
            round_trips.append((time.perf_counter() - settled) * 1000)
        await conn.execute(f"DROP TABLE {TABLE}")
    finally:
        writer.close()
        await conn.close()
    return {
        "rate": rate,
        "seconds": seconds,
        "postgres_commit_ms": summary(commits),
        "settlement_ms": summary(settlements),
        "redis_round_trip_ms": summary(round_trips),
    }


class _Settlements:
    """One-charge settlement batches (one micro-unit) with a usage row each, as the gateway
    writes them at a low rate; request ids unique to the probe."""

    def __init__(self, account_id: str, key_id: str) -> None:
        self.account_id, self.key_id = account_id, key_id
        self.count = 0

    def next(self) -> tuple[str, str]:
        self.count += 1
        request_id = f"storeprobe-{self.count}"
        now = int(time.time() * 1000)
        usage = '{"prompt_tokens":16,"completion_tokens":12,"total_tokens":28}'
        charge = Charge(request_id, self.account_id, self.key_id, 1, "probe", "chat", usage, now)
        row = RequestLogEntry(
            request_id, self.account_id, self.key_id, "probe", "chat", 200, usage, 1, 1, now
        )
        return charges_json([charge]), logs_json([row])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--redis", required=True, help="HOST:PORT")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        import uvloop  # the gateway's loop: the same costs per round trip

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    try:
        result = asyncio.run(probe(args.dsn, args.redis, args.rate, args.seconds))
    except (OSError, asyncpg.PostgresError, RuntimeError) as exc:
        print(f"storeprobe: {exc}", file=sys.stderr)
        return 1
    args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

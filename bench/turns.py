"""Saturation in turns: the floor and Bastion's variants alive together, each saturated for a
few seconds in rotation, round after round.

Measured one after the other, minutes apart, the floor and Bastion see different machines:
on this shared host the floor alone has ranged from 4,400 to 6,600 req/s per core between
runs of the same tree, which moves Bastion's share of it from 0.54 to 0.45.  In turns, each
round's ratio compares two measurements seconds apart; the report shows the median over the
rounds with their spread.  From a few rounds on (``report.MIN_TURN_ROUNDS``) the targets judge
the share of the floor on these rather than on the per-target runs: 3-s and 10-s turns read
alike (docs/performance.md), while per-target runs minutes apart saw the floor alone move by
half between two runs of the same tree.
"""

from __future__ import annotations

import statistics
import sys
from typing import TYPE_CHECKING, Any

from bench.procs import CpuMeter
from bench.report import FLOOR, LITELLM_KEYS
from bench.stats import per_core
from bench.wrk import run_wrk

if TYPE_CHECKING:
    from bench.runner import Env, Target

LEAD_IN_S = 1.0
"""Load before each measured turn, not counted."""
TAKES_TURNS = (
    "floor",
    "bastion-embedded",
    "bastion-embedded-full",
    "bastion-scaled",
    LITELLM_KEYS,
)
"""LiteLLM takes its turns too, so that Bastion's multiple of it is read seconds apart as well:
measured alone, LiteLLM per-key read 121 and 58 req/s per core an hour apart on one host."""


def _connections(name: str, connection_list: list[int]) -> int:
    """LiteLLM at the fewest connections (its best: 121 req/s at 8 against 90 at 64), every
    other target at the most."""
    return min(connection_list) if name.startswith("litellm") else max(connection_list)


def run(env: Env, names: list[str]) -> dict[str, Any]:
    """Start the named targets together and saturate them in turns (non-streaming JSON)."""
    from bench.runner import OTHER_CPU, _run_cleanup, smoke, start_target

    args = env.args
    cleanup: list[Any] = []
    targets: dict[str, Target] = {}
    skipped: dict[str, str] = {}
    wrk: dict[str, Any] = {"cpus": OTHER_CPU, "pids_file": env.pids_file}
    try:
        for name in names:
            try:
                target = start_target(env, name, cleanup)
            except Exception as exc:  # one that cannot start leaves the others their turns
                skipped[name] = str(exc)
                continue
            if target.proc is not None:
                cleanup.append(lambda proc=target.proc: env.procs.stop(proc))
            problem = smoke(target)
            if problem:
                skipped[name] = f"smoke test failed: {problem}"
                continue
            targets[name] = target
        if FLOOR not in targets:
            return {"skipped": skipped.get(FLOOR, "the floor did not start"), "rounds": []}
        for name, target in targets.items():  # warm-up, not counted
            run_wrk(
                target.unary_url,
                env.bodies.unary,
                key=target.key,
                seconds=4,
                connections=_connections(name, args.connection_list),
                **wrk,
            )
        rounds: list[dict[str, dict[str, float | None]]] = []
        order = list(targets)
        for number in range(args.turn_rounds):
            # rotate who goes first, so no target always follows the same neighbour
            shift = number % len(order)
            one: dict[str, dict[str, float | None]] = {}
            for name in order[shift:] + order[:shift]:
                one[name] = _turn(env, targets[name], _connections(name, args.connection_list), wrk)
            rounds.append(one)
            line = ", ".join(f"{n} {r['rps_per_core'] or 0:,.0f}" for n, r in one.items())
            print(f"bench:    turn round {number + 1}: {line} req/s per core", file=sys.stderr)
    finally:
        _run_cleanup(cleanup)
    return {
        "connections": max(args.connection_list),
        "litellm_connections": min(args.connection_list),
        "seconds": args.turn_seconds,
        "rounds": rounds,
        "skipped": skipped,
        "summary": summarise(rounds),
    }


def _turn(
    env: Env, target: Target, connections: int, wrk: dict[str, Any]
) -> dict[str, float | None]:
    assert target.proc is not None
    # A discarded lead-in: a gateway idle through the others' turns first wakes up (caches,
    # the CPU's clock, connection pools), which a short measured turn would count against it.
    run_wrk(
        target.unary_url,
        env.bodies.unary,
        key=target.key,
        seconds=LEAD_IN_S,
        connections=connections,
        **wrk,
    )
    meter = CpuMeter({"gateway": target.proc.pid})
    result = run_wrk(
        target.unary_url,
        env.bodies.unary,
        key=target.key,
        seconds=env.args.turn_seconds,
        connections=connections,
        **wrk,
    )
    share = meter.shares()["gateway"]
    return {
        "rps": result.rps,
        "gateway_cpu_share": share,
        "rps_per_core": per_core(result.rps, share),
        "errors": float(result.error_count),
    }


def summarise(rounds: list[dict[str, dict[str, float | None]]]) -> dict[str, dict[str, float]]:
    """Per target: median throughput per core, and its ratio to the floor in the same round
    (median, lowest and highest over the rounds); for Bastion's, its multiple of LiteLLM
    per-key in the same round too.  A turn in which a gateway barely ran (no figure per core)
    is left out."""
    names = {name for one in rounds for name in one}
    out: dict[str, dict[str, float]] = {}
    for name in sorted(names, key=lambda n: (n != FLOOR, n)):
        per_round = [(one[name].get("rps_per_core"), one) for one in rounds if name in one]
        figures = [value for value, _ in per_round if value is not None]
        if not figures:
            continue
        entry = {"rps_per_core": statistics.median(figures), "rounds": float(len(figures))}
        if name not in (FLOOR, LITELLM_KEYS):
            entry |= _spread("floor_ratio", _against(per_round, FLOOR))
        times = _against(per_round, LITELLM_KEYS)
        if times and name.startswith("bastion"):
            entry |= _spread("litellm_times", times) | {"litellm_rounds": float(len(times))}
        out[name] = entry
    return out


def _against(
    per_round: list[tuple[float | None, dict[str, dict[str, float | None]]]], base: str
) -> list[float]:
    """A target's figure over ``base``'s, in each round where both have one."""
    return [
        value / other
        for value, one in per_round
        if value is not None and (other := one.get(base, {}).get("rps_per_core"))
    ]


def _spread(key: str, values: list[float]) -> dict[str, float]:
    """``values``' median as ``key``, with its lowest and highest (nothing if none)."""
    if not values:
        return {}
    return {
        key: statistics.median(values),
        f"{key}_min": min(values),
        f"{key}_max": max(values),
    }

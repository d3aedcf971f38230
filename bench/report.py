"""The Markdown summary of a run: every figure, the ratios, and PASS/FAIL per target."""

from __future__ import annotations

import math
from pathlib import Path
from statistics import median
from typing import Any

from bench.stats import ratio

# (target, what, threshold) from issue 7 §2; the comparisons are made in _targets().
EMBEDDED = "bastion-embedded"
EMBEDDED_FULL = "bastion-embedded-full"
EMBEDDED_NORMAL = "bastion-embedded-normal"  # name of the FULL/NORMAL variant in older runs
SCALED = "bastion-scaled"
FLOOR = "floor"
DIRECT = "direct"
LITELLM_KEYS = "litellm-keys"
MIN_TURN_ROUNDS = 3
"""Rounds in turns from which the share of the floor is judged on them, not on the per-target
runs: the floor alone moved 6,013 to 9,313 req/s per core between two runs twenty minutes
apart on one host, Bastion 3,607 to 3,777 (docs/performance.md)."""


def _get(data: dict[str, Any] | None, *path: str) -> Any:
    node: Any = data
    for part in path:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _num(value: Any, fmt: str = "{:,.0f}") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return fmt.format(value)


def _ms(value: Any) -> str:
    return _num(value, "{:.2f}")


def _pct(value: Any) -> str:
    return _num(None if value is None else value * 100, "{:.0f} %")


def added(results: dict[str, Any], name: str, phase: str, metric: str, p: str) -> float | None:
    """A target's percentile minus direct's, in ms (None when either is missing)."""
    targets = results["targets"]
    mine = _get(targets.get(name), phase, metric, p)
    base = _get(targets.get(DIRECT), phase, metric, p)
    if mine is None or base is None:
        return None
    return float(mine) - float(base)


def _sat(sat: dict[str, Any]) -> str:
    text = _num(sat.get("rps"))
    if sat.get("rps_per_core") is not None:
        text += f" ({_num(sat['rps_per_core'])})"
    return text


def _errors(outcome: dict[str, Any]) -> str:
    sent = errors = 0
    for kind in ("unary", "stream"):
        sat = _get(outcome, "saturation", kind) or {}
        sent += int(sat.get("requests", 0))
        errors += sum(int(v) for v in (sat.get("errors") or {}).values())
    for phase in ("latency", "paced", "soak"):
        data = outcome.get(phase) or {}
        sent += int(data.get("sent", 0))
        errors += int(data.get("sent", 0)) - int(data.get("ok", data.get("sent", 0)))
    if not sent:
        return "–"
    return f"{errors / sent:.3%} ({errors:,}/{sent:,})"


def figures_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| target | saturated req/s, JSON (per core²) | saturated req/s, SSE (per core²) "
        "| gateway CPU at saturation "
        "| p50 / p99 at fixed rate (ms) | added p50 / p99 (ms) | TTFB added p50 / p99 (ms) "
        "| first token added p50 / p99 (ms) | RSS peak / steady (MiB) | RSS growth after "
        "warm-up | open fds, median 2nd → 4th quarter of the soak | error rate |",
        "|" + "---|" * 12,
    ]
    for name, outcome in results["targets"].items():
        label = outcome.get("label", name)
        if "skipped" in outcome:
            lines.append(f"| {label} | skipped: {outcome['skipped']} |" + " |" * 10)
            continue
        sat_u = _get(outcome, "saturation", "unary") or {}
        sat_s = _get(outcome, "saturation", "stream") or {}
        lat = outcome.get("latency") or {}
        soak = outcome.get("soak") or {}
        if "skipped" in lat:
            fixed = added_text = "not measured¹"
        else:
            fixed = f"{_ms(_get(lat, 'latency_ms', 'p50'))} / {_ms(_get(lat, 'latency_ms', 'p99'))}"
            added_text = (
                "–"
                if name == DIRECT
                else f"{_ms(added(results, name, 'latency', 'latency_ms', 'p50'))} / "
                f"{_ms(added(results, name, 'latency', 'latency_ms', 'p99'))}"
            )

        def pair(metric: str, name: str = name, outcome: dict[str, Any] = outcome) -> str:
            if name == DIRECT:
                return (
                    f"({_ms(_get(outcome, 'paced', metric, 'p50'))} / "
                    f"{_ms(_get(outcome, 'paced', metric, 'p99'))})"
                )
            return (
                f"{_ms(added(results, name, 'paced', metric, 'p50'))} / "
                f"{_ms(added(results, name, 'paced', metric, 'p99'))}"
            )

        gw = sat_u.get("gateway_cpu_share")
        lines.append(
            f"| {label} | {_sat(sat_u)} | {_sat(sat_s)} | "
            f"{_pct(gw) if gw is not None else 'n/a'} | {fixed} | {added_text} | "
            f"{pair('first_byte_ms')} | {pair('first_token_ms')} | "
            + (
                f"{_num(soak.get('rss_peak_mib'), '{:.1f}')} / "
                f"{_num(soak.get('rss_steady_mib'), '{:.1f}')} | "
                f"{_num(None if soak.get('rss_growth') is None else soak['rss_growth'] * 100, '{:+.1f} %')} | "  # noqa: E501
                "{} → {} | ".format(*(_num(v) for v in fd_trend(soak)))
                if soak
                else "n/a | n/a | n/a | "
            )
            + f"{_errors(outcome)} |"
        )
    return lines


def generator_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| target | wrk CPU (JSON / SSE) | upstream nginx CPU (JSON) | open-loop generator CPU "
        "(fixed rate / streams / soak) | scheduler max lag (ms) | gateway CPU µs per request "
        "at fixed rate |",
        "|---|---|---|---|---|---|",
    ]
    for name, outcome in results["targets"].items():
        if "skipped" in outcome:
            continue
        sat = outcome.get("saturation") or {}
        lat, paced, soak = (outcome.get(k) or {} for k in ("latency", "paced", "soak"))
        lag = max(
            (float(d.get("scheduler_max_lag_ms", 0)) for d in (lat, paced, soak)), default=0.0
        )
        lines.append(
            f"| {outcome.get('label', name)} | {_pct(_get(sat, 'unary', 'wrk_cpu_share'))} / "
            f"{_pct(_get(sat, 'stream', 'wrk_cpu_share'))} | "
            f"{_pct(_get(sat, 'unary', 'upstream_cpu_share'))} | "
            f"{_pct(lat.get('generator_cpu_share'))} / {_pct(paced.get('generator_cpu_share'))}"
            f" / {_pct(soak.get('generator_cpu_share'))} | {_ms(lag)} | "
            f"{_num(lat.get('gateway_cpu_us_per_request'))} |"
        )
    return lines


def p50_p99(summary: Any) -> str:
    """A summary's ``p50 / p99`` in ms (``–`` where it has none)."""
    if not isinstance(summary, dict):
        return "–"
    return f"{_ms(summary.get('p50'))} / {_ms(summary.get('p99'))}"


def parts_table(results: dict[str, Any]) -> list[str]:
    """Bastion's time at the fixed rate split by its access log, beside the stores alone."""
    lines = [
        "| target | requests | duration p50 / p99 (ms) | overhead p50 / p99 | admission p50 / "
        "p99 | commit wait p50 / p99 | own work p50 / p99 | stores alone: PostgreSQL commit "
        "p50 / p99 | stores alone: settlement batch p50 / p99 | stores alone: Redis round trip "
        "p50 / p99 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, outcome in results["targets"].items():
        parts = _get(outcome, "latency", "gateway_log")
        if not isinstance(parts, dict):
            continue
        probe = outcome.get("store_probe") or {}
        lines.append(
            f"| {outcome.get('label', name)} | {_num(_get(parts, 'duration_ms', 'count'))} | "
            + " | ".join(
                p50_p99(parts.get(part))
                for part in ("duration_ms", "overhead_ms", "admit_ms", "commit_ms", "own_ms")
            )
            + f" | {p50_p99(probe.get('postgres_commit_ms'))} | "
            f"{p50_p99(probe.get('settlement_ms'))} | "
            f"{p50_p99(probe.get('redis_round_trip_ms'))} |"
        )
    return lines if len(lines) > 2 else []


def fd_trend(soak: dict[str, Any]) -> tuple[float | None, float | None]:
    """Median open fds in the soak's second quarter and in its last quarter.

    Under load the count follows the open connections (clients, the upstream pool, which
    keeps idle connections for 30 s); a leak shows as a rise from one quarter to the last.
    """
    fds = [float(s["fds"]) for s in soak.get("samples") or ()]
    if len(fds) < 8:
        return None, None
    quarter = len(fds) // 4
    return median(fds[quarter : 2 * quarter]), median(fds[-quarter:])


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**PASS**" if ok else "**FAIL**")


def targets_table(results: dict[str, Any]) -> list[str]:
    targets = results["targets"]

    def rps(name: str) -> float | None:
        """Saturated non-streaming throughput per core (per CPU-second of the gateway)."""
        sat = _get(targets.get(name), "saturation", "unary") or {}
        value = sat.get("rps_per_core") or sat.get("rps")
        return None if value is None else float(value)

    def measured(name: str) -> bool:
        return name in targets and "skipped" not in targets[name]

    rows: list[tuple[str, str, str, bool | None]] = []
    groups = (
        (EMBEDDED, "embedded", 0.50, 2.0),
        (EMBEDDED_FULL, "embedded (FULL)", 0.50, 2.0),
        (EMBEDDED_NORMAL, "embedded (NORMAL)", 0.50, 2.0),
        (SCALED, "scaled out", 0.35, 3.0),
    )
    for name, label, floor_share, p99_limit in groups:
        if name in (EMBEDDED_FULL, EMBEDDED_NORMAL) and name not in targets:
            continue
        if not measured(name):
            reason = _get(targets.get(name), "skipped") or "not run"
            rows.append((f"{label}: all targets", "–", str(reason), None))
            continue
        alone = ratio(rps(name), rps(FLOOR))
        alone_shown = _num(alone, "{:.2f}") + f" ({_num(rps(name))} / {_num(rps(FLOOR))} req/s)"
        turned = _get(results, "turns", "summary", name) or {}
        in_turns = turned.get("floor_ratio")
        if in_turns is not None and turned.get("rounds", 0) >= MIN_TURN_ROUNDS:
            # measurements seconds apart, not minutes: the verdict reads these
            share: float | None = float(in_turns)
            shown = (
                f"in turns {in_turns:.2f} (median of {turned['rounds']:.0f} rounds, "
                f"{turned['floor_ratio_min']:.2f}–{turned['floor_ratio_max']:.2f}); "
                f"per-target runs {alone_shown}"
            )
        else:
            share, shown = alone, alone_shown
            if in_turns is not None:
                shown += f"; in turns {in_turns:.2f} (too few rounds to judge by)"
        rows.append(
            (
                f"{label}: non-streaming throughput ≥ {floor_share:.0%} of the floor's (per core)",
                f"≥ {floor_share:.2f}",
                shown,
                None if share is None else share >= floor_share,
            )
        )
        times = ratio(rps(name), rps(LITELLM_KEYS))
        times_shown = (
            _num(times, "{:.1f}×") + f" ({_num(rps(name))} / {_num(rps(LITELLM_KEYS))} req/s)"
        )
        if turned.get("litellm_rounds", 0) >= MIN_TURN_ROUNDS:
            times = float(turned["litellm_times"])
            times_shown = (
                f"in turns {times:.1f}× (median of {turned['litellm_rounds']:.0f} rounds, "
                f"{turned['litellm_times_min']:.1f}–{turned['litellm_times_max']:.1f}×); "
                f"per-target runs {times_shown}"
            )
        rows.append(
            (
                f"{label}: ≥ 50× LiteLLM with per-key auth, limits, budget, cost tracking",
                "≥ 50×",
                times_shown,
                None if times is None else times >= 50,
            )
        )
        p99 = added(results, name, "latency", "latency_ms", "p99")
        rate = _get(results, "settings", "rate")
        rows.append(
            (
                f"{label}: p99 added latency over direct at {_num(rate)} req/s",
                f"≤ {p99_limit:g} ms",
                _ms(p99) + " ms" if p99 is not None else "–",
                None if p99 is None else p99 <= p99_limit,
            )
        )
        for metric, what in (("first_byte_ms", "first byte"), ("first_token_ms", "first token")):
            value = added(results, name, "paced", metric, "p50")
            rows.append(
                (
                    f"{label}: time to {what} added on paced streams (p50)",
                    "≤ 1 ms",
                    _ms(value) + " ms" if value is not None else "–",
                    None if value is None else value <= 1.0,
                )
            )
        soak = targets[name].get("soak") or {}
        grown = soak.get("rss_growth")
        rows.append(
            (
                f"{label}: RSS flat after warm-up over the soak",
                "≤ +10 %",
                _num(None if grown is None else grown * 100, "{:+.1f} %"),
                None if grown is None else grown <= 0.10,
            )
        )
        at_rest = soak.get("fds_idle_before") is not None and soak.get("rest_seconds", 0) >= 30
        if at_rest:
            fds_a, fds_b = soak["fds_idle_before"], soak.get("fds_idle_after")
            what, limit, slack = "open fds at rest, before → after the soak", "≤ +8", 8
        else:
            fds_a, fds_b = fd_trend(soak)
            what, limit, slack = "median open fds under load, 2nd → 4th quarter", "≤ +16", 16
        rows.append(
            (
                f"{label}: no file-descriptor leak over the soak ({what})",
                limit,
                f"{_num(fds_a)} → {_num(fds_b)}",
                None if fds_a is None or fds_b is None else fds_b <= fds_a + slack,
            )
        )
    lines = ["| target | threshold | measured | result |", "|---|---|---|---|"]
    lines += [f"| {what} | {limit} | {value} | {_verdict(ok)} |" for what, limit, value, ok in rows]
    return lines


def _spread_text(entry: dict[str, float], key: str, digits: int, unit: str = "") -> str:
    """A median over the rounds with its lowest and highest, as "m (lo–hi)", or "–"."""
    if key not in entry:
        return "–"
    low, high = entry[f"{key}_min"], entry[f"{key}_max"]
    return f"{entry[key]:.{digits}f}{unit} ({low:.{digits}f}–{high:.{digits}f}{unit})"


def turns_table(results: dict[str, Any]) -> list[str]:
    turns = results.get("turns") or {}
    summary = turns.get("summary") or {}
    if not summary:
        return [f"Not run: {turns.get('skipped') or 'no floor or no Bastion target'}."]
    lines = [
        f"The floor and Bastion alive together, each saturated for {turns['seconds']:g} s in "
        f"rotation ({turns['connections']} connections"
        + (
            f"; LiteLLM {turns['litellm_connections']}"
            if LITELLM_KEYS in summary and "litellm_connections" in turns
            else ""
        )
        + f"), {len(turns['rounds'])} rounds; each "
        "round's ratio compares measurements seconds apart. From "
        f"{MIN_TURN_ROUNDS} rounds on, the share of the floor and the multiple of LiteLLM in "
        "the targets are judged on these (see docs/performance.md).",
        "",
        "| target | req/s per core (median) | share of the floor (median, lowest–highest) "
        "| × LiteLLM per-key (median, lowest–highest) |",
        "|---|---|---|---|",
    ]
    for name, entry in summary.items():
        label = _get(results, "targets", name, "label") or name
        share = _spread_text(entry, "floor_ratio", 2)
        times = _spread_text(entry, "litellm_times", 1, "×")
        lines.append(f"| {label} | {_num(entry['rps_per_core'])} | {share} | {times} |")
    for name, why in (turns.get("skipped") or {}).items():
        lines.append(f"| {name} | skipped: {why} | – | – |")
    apart = disagreements(results)
    if apart:
        lines += [
            "",
            "Per-target runs and turns disagree by more than "
            f"{DISAGREEMENT:.0%} for: {', '.join(apart)} (per-target against in turns, per "
            "core). Both measure saturation, minutes apart (per-target: the best of the "
            "connection counts over a longer run; turns: short slices at the highest count): a "
            "gap this size means the machine's speed moved between them or the target behaves "
            "differently in short turns. Ratios between two per-target runs can mislead; the "
            "turns compare measurements seconds apart, which is why the targets read them.",
        ]
    return lines


DISAGREEMENT = 0.15


def disagreements(results: dict[str, Any]) -> list[str]:
    """Targets whose per-target throughput and in-turns throughput (per core) differ by more
    than ``DISAGREEMENT``, each as "label a vs b (±n %)"."""
    summary = _get(results, "turns", "summary") or {}
    found = []
    for name, entry in summary.items():
        alone = _get(results, "targets", name, "saturation", "unary", "rps_per_core")
        turned = entry.get("rps_per_core")
        if not alone or not turned:
            continue
        change = alone / turned - 1
        if abs(change) > DISAGREEMENT:
            label = _get(results, "targets", name, "label") or name
            found.append(f"{label} {_num(alone)} vs {_num(turned)} ({change:+.0%})")
    return found


def _bastion(info: dict[str, Any]) -> str:
    if info.get("bastion_src"):
        return f"source from {info['bastion_src']} (repository at {info.get('bastion_commit')})"
    return f"{info.get('bastion_commit')} (working tree's src/ {info.get('bastion_tree')})"


def _parts_section(results: dict[str, Any]) -> list[str]:
    table = parts_table(results)
    if not table:
        return []
    return [
        "## Where Bastion's time goes at the fixed rate",
        "",
        *table,
        "",
        "From each Bastion's own access log over its fixed-rate phase (answered requests "
        "after the warm-up): `overhead` is the time apart from the upstream; within it "
        "`admission` (limits and hold; scaled out, a Redis round trip), `commit wait` (the "
        "charge's group commit before the answer's last bytes; scaled out, PostgreSQL's "
        "commit and its flush to disk) and `own work`, the rest. Stores alone: the same "
        "services measured by `bench.storeprobe` right after, at the same rate, with nothing "
        "else (a one-row autocommit INSERT; Bastion's settlement batch, `bastion_settle` with "
        "one charge and one usage row; a PING over a raw socket).",
        "",
    ]


def markdown(results: dict[str, Any], run_dir: Path) -> str:
    info = results["machine"]
    settings = results["settings"]
    notes = []
    for outcome in results["targets"].values():
        for note in outcome.get("notes") or ():
            notes.append(f"- {outcome.get('label')}: {note}")
        lat = outcome.get("latency") or {}
        if "skipped" in lat:
            notes.append(f"- ¹ {outcome.get('label')}: {lat['skipped']}")
    out = [
        "# Bastion benchmark",
        "",
        f"- date: {info.get('date')}; machine: {info.get('cpu')}, {info.get('cores')} cores, "
        f"Linux {info.get('kernel')}",
        f"- {info.get('python')}; {info.get('packages')}",
        f"- Bastion: {_bastion(info)}; "
        f"LiteLLM {info.get('litellm', 'not run')}; {info.get('nginx')}; {info.get('wrk')}",
        f"- load: saturation with wrk, 1 thread, {settings['connections']} connections "
        f"(each target's best), {settings['sat_seconds']:g} s per run; fixed rate "
        f"{settings['rate']:g} req/s for {settings['latency_seconds']:g} s (open loop); paced "
        f"streams {settings['stream_rate']:g}/s for {settings['stream_seconds']:g} s (simulator: "
        f"first token {settings['first_token_ms']:g} ms, {settings['tokens_per_second']:g} "
        f"tokens/s); soak {settings['soak_seconds']:g} s per gateway",
        "- pinning: gateway on core 0; nginx, simulator, wrk, load generator on core 1",
        f"- raw results: {run_dir.relative_to(run_dir.parents[2])}/",
        "",
        "## Figures",
        "",
        *figures_table(results),
        "",
        "² per core: requests per CPU-second used by the gateway process (req/s ÷ its CPU "
        "share), which the ratios below use; on a shared machine other work can take part of "
        "the gateway's core. Added latency and time to first byte/token are the target's "
        "percentile minus direct's "
        "(direct's own values in parentheses). Streams for TTFB come from the simulator, paced; "
        "saturation streams come from nginx (a fixed 12-token SSE body).",
        "",
        *_parts_section(results),
        "## Saturation in turns",
        "",
        *turns_table(results),
        "",
        "## Targets (issue 7)",
        "",
        *targets_table(results),
        "",
        "## Load generators (not the bottleneck if the gateway's CPU is near 100 %)",
        "",
        *generator_table(results),
    ]
    if notes:
        out += ["", "## Notes", "", *notes]
    return "\n".join(out) + "\n"

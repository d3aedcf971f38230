"""The benchmark run: one fast upstream, then every target in turn under the same load.

Per target: saturation (wrk, closed loop) non-streaming and streaming, latency at a fixed
moderate rate (open loop), time to first byte and first token on paced streams, and a soak
that samples RSS, file descriptors and threads every second.  The gateway runs on core 0,
everything else (upstream, simulator, load generators, this driver) on core 1.  Then the
floor and Bastion's variants saturated in turns, alive together (bench/turns.py), for the
ratios to the floor.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bastion.http.server import YOUNG_GC_THRESHOLD
from bench import bastion_target, litellm_target, report, stores, turns
from bench.breakdown import breakdown, log_offset, read_lines
from bench.procs import (
    CpuMeter,
    Proc,
    Processes,
    cores,
    fd_count,
    free_port,
    rss_bytes,
    set_priority,
    thread_count,
    wait_port,
)
from bench.stats import growth, per_core
from bench.upstream import MODEL_JSON, MODEL_PACED, MODEL_SSE, nginx_config, request_body
from bench.wrk import run_wrk

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"
RESULTS = ROOT / "bench" / "results"
GATEWAY_CPU = "0"
REDIS_ADDRESS = "127.0.0.1:6379"
"""The machine's Redis: Bastion scaled out's and LiteLLM's databases, and the store probe."""
LOAD_WARMUP_S = 2.0
"""The open-loop generator's warm-up before it counts (bench.load --warmup)."""
STORE_PROBE_S = 10.0
"""How long the stores are probed alone after Bastion scaled out's latency phase."""
OTHER_CPU = "1"

ALL_TARGETS = (
    "direct",
    "floor",
    "bastion-embedded",
    "bastion-embedded-full",
    "bastion-scaled",
    "litellm-basic",
    "litellm-keys",
)
LABELS = {
    "direct": "direct (nginx / simulator)",
    "floor": "floor (bench/floor.py)",
    "bastion-embedded": "Bastion embedded (SQLite)",
    "bastion-embedded-full": "Bastion embedded, sqlite_synchronous = FULL",
    "bastion-scaled": "Bastion scaled out (PostgreSQL + Redis)",
    "litellm-basic": "LiteLLM, master key only",
    "litellm-keys": "LiteLLM, per-key auth + Redis limiter + budget + cost",
}


@dataclass
class Bodies:
    unary: Path
    stream: Path
    paced: Path


@dataclass
class Target:
    name: str
    unary_url: str
    stream_url: str
    paced_url: str
    key: str = ""
    proc: Proc | None = None
    notes: list[str] = field(default_factory=list)
    stores: tuple[str, str] | None = None
    """Bastion scaled out: its PostgreSQL DSN and Redis HOST:PORT, for the store probe."""


@dataclass
class Env:
    args: argparse.Namespace
    run_dir: Path
    procs: Processes
    bodies: Bodies
    nginx: Proc
    simulator: Proc
    nginx_port: int
    simulator_port: int
    pids_file: str | None


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run",
        description="Bastion's benchmark: direct, floor, Bastion and LiteLLM side by side.",
    )
    parser.add_argument(
        "--targets",
        default=",".join(ALL_TARGETS),
        help=f"comma-separated subset of {', '.join(ALL_TARGETS)} (direct is always run)",
    )
    parser.add_argument("--sat-seconds", type=float, default=15.0, help="each saturation run")
    parser.add_argument(
        "--connections",
        default="8,64",
        help="wrk connections; a list is swept and each target's best is reported",
    )
    parser.add_argument(
        "--turn-rounds",
        type=int,
        default=8,
        help="rounds of saturation in turns (floor and Bastion alive together; 0: none)",
    )
    parser.add_argument("--turn-seconds", type=float, default=3.0, help="each turn's wrk run")
    parser.add_argument("--rate", type=float, default=200.0, help="fixed rate for latency")
    parser.add_argument("--latency-seconds", type=float, default=30.0)
    parser.add_argument("--stream-rate", type=float, default=20.0, help="paced streams/s")
    parser.add_argument("--stream-seconds", type=float, default=20.0)
    parser.add_argument("--soak-seconds", type=float, default=600.0, help="soak per target")
    parser.add_argument("--soak-rate", type=float, default=200.0)
    parser.add_argument(
        "--rest-seconds",
        type=float,
        default=35.0,
        help="idle time before and after each soak, for the file-descriptor reading at rest "
        "(longer than the upstream pool's 30 s keep-alive)",
    )
    parser.add_argument(
        "--tokens-per-second", type=float, default=100.0, help="simulator pacing of streams"
    )
    parser.add_argument("--first-token-ms", type=float, default=20.0)
    parser.add_argument(
        "--redis-db",
        type=int,
        default=14,
        help="Redis db (0-14) used and flushed by Bastion (LiteLLM: the next one)",
    )
    parser.add_argument(
        "--no-access-log",
        action="store_true",
        help="run Bastion with log.access_log = false (default: on, as shipped)",
    )
    parser.add_argument(
        "--floor-gc",
        action="store_true",
        help="give the floor Bastion's cyclic-collector settings (frozen start-up objects, "
        "young-generation threshold); default: CPython's, as a minimal proxy has",
    )
    parser.add_argument(
        "--floor-client",
        choices=("aiohttp", "wire"),
        default="aiohttp",
        help="the floor's upstream client: aiohttp's (default, the usual libraries) or "
        "Bastion's own (src/bastion/upstream/wire.py), to measure Bastion against a "
        "pass-through with the same client",
    )
    parser.add_argument(
        "--bastion-src",
        type=Path,
        default=None,
        help="run Bastion from this source folder (a scratch copy of src/, to measure a change "
        "before it is made; it goes first on PYTHONPATH)",
    )
    parser.add_argument(
        "--stores-cpu",
        choices=("shared", "other"),
        default="shared",
        help="PostgreSQL and Redis: left where the machine runs them (shared), or pinned to "
        "the load's core for the run and put back after (other; root only)",
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=10,
        help="raise the run's scheduling priority by this much when root (0: leave it)",
    )
    parser.add_argument(
        "--report",
        type=Path,
        default=None,
        metavar="RUN_DIR",
        help="only rewrite the summary of an earlier run from its raw results.json",
    )
    parser.add_argument("--profile", action="store_true", help="also profile Bastion (py-spy)")
    parser.add_argument("--profile-seconds", type=float, default=20.0)
    parser.add_argument(
        "--profile-target",
        choices=("bastion-embedded", "bastion-scaled"),
        default="bastion-embedded",
        help="which Bastion --profile records",
    )
    parser.add_argument("--profile-only", action="store_true", help="profile, no comparison")
    args = parser.parse_args(argv)
    chosen = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = sorted(set(chosen) - set(ALL_TARGETS))
    if unknown:
        parser.error(f"unknown target(s): {', '.join(unknown)}")
    args.target_list = ["direct"] + [t for t in ALL_TARGETS if t in chosen and t != "direct"]
    try:
        args.connection_list = sorted({int(c) for c in str(args.connections).split(",") if c})
    except ValueError:
        parser.error("--connections must be a comma-separated list of integers")
    if not args.connection_list or min(args.connection_list) < 1:
        parser.error("--connections must list positive integers")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.report is not None:
        run_dir = args.report.resolve()
        text = report.markdown(json.loads((run_dir / "results.json").read_text()), run_dir)
        (run_dir / "summary.md").write_text(text)
        (RESULTS / "latest.md").write_text(text)
        print(text)
        return 0
    if cores() >= 2:
        os.sched_setaffinity(0, {int(OTHER_CPU)})
    if args.nice > 0 and os.geteuid() == 0:
        # On a shared machine, other work (test suites) then disturbs the measurement less.
        set_priority(args.nice)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupted)  # unwind, so that every started process is stopped
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = RESULTS / "raw" / stamp
    run_dir.mkdir(parents=True, exist_ok=True)
    procs = Processes(run_dir / "logs")
    restore_stores = None
    try:
        if args.stores_cpu == "other":
            if cores() < 2 or os.geteuid() != 0:
                raise SystemExit("bench: --stores-cpu other needs two cores and root")
            try:
                restore_stores = stores.pin(int(OTHER_CPU))
            except (LookupError, OSError) as exc:
                raise SystemExit(f"bench: --stores-cpu other: {exc}") from None
        return _run(args, run_dir, procs)
    finally:
        procs.stop_all()
        if restore_stores is not None:
            restore_stores()


def _interrupted(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _run(args: argparse.Namespace, run_dir: Path, procs: Processes) -> int:
    info = machine_info()
    if args.bastion_src is not None:
        info["bastion_src"] = str(args.bastion_src)
    if any(t.startswith("litellm") for t in args.target_list) and not args.profile_only:
        try:
            info["litellm"] = litellm_target.ensure_installed()
        except (subprocess.CalledProcessError, OSError) as exc:
            print(f"bench: LiteLLM could not be installed ({exc}); skipping it", file=sys.stderr)
            args.target_list = [t for t in args.target_list if not t.startswith("litellm")]
            info["litellm"] = f"not installed: {exc}"
    bodies = Bodies(run_dir / "unary.json", run_dir / "stream.json", run_dir / "paced.json")
    bodies.unary.write_bytes(request_body(MODEL_JSON))
    bodies.stream.write_bytes(request_body(MODEL_SSE, stream=True))
    bodies.paced.write_bytes(request_body(MODEL_PACED, stream=True))

    nginx_port, simulator_port = free_port(), free_port()
    nginx_dir = run_dir / "nginx"
    conf = nginx_config(nginx_dir, nginx_port)
    nginx = procs.start(
        "nginx",
        [_nginx(), "-c", str(conf), "-p", str(nginx_dir), "-e", str(nginx_dir / "error.log")],
        cpus=OTHER_CPU,
    )
    simulator = procs.start(
        "simulator",
        [
            str(PYTHON),
            "-m",
            "bench.sim",
            "--port",
            str(simulator_port),
            "--tokens-per-second",
            str(args.tokens_per_second),
            "--first-token-ms",
            str(args.first_token_ms),
        ],
        cpus=OTHER_CPU,
        cwd=ROOT,
    )
    for proc, port in ((nginx, nginx_port), (simulator, simulator_port)):
        if not wait_port(port, proc, 30):
            raise SystemExit(f"bench: {proc.name} did not start:\n{proc.tail()}")
    env = Env(
        args,
        run_dir,
        procs,
        bodies,
        nginx,
        simulator,
        nginx_port,
        simulator_port,
        os.environ.get("BENCH_PIDS_FILE"),
    )
    settings = {
        k: str(v) if isinstance(v, Path) else v
        for k, v in vars(args).items()
        if k not in ("target_list", "connection_list") and not callable(v)
    }
    results: dict[str, Any] = {"machine": info, "settings": settings, "targets": {}}
    if not args.profile_only:
        for name in args.target_list:
            print(f"bench: == {LABELS[name]}", file=sys.stderr, flush=True)
            started = time.monotonic()
            outcome = run_target(env, name)
            outcome["elapsed_s"] = time.monotonic() - started
            results["targets"][name] = outcome
            (run_dir / f"{name}.json").write_text(json.dumps(outcome, indent=2))
        in_turns = [t for t in turns.TAKES_TURNS if t in args.target_list]
        if args.turn_rounds > 0 and report.FLOOR in in_turns and len(in_turns) > 1:
            print("bench: == saturation in turns", file=sys.stderr, flush=True)
            results["turns"] = turns.run(replace(env, run_dir=run_dir / "turns"), in_turns)
        (run_dir / "results.json").write_text(json.dumps(results, indent=2))
        text = report.markdown(results, run_dir)
        (RESULTS / "latest.md").write_text(text)
        (run_dir / "summary.md").write_text(text)
        print(text)
    if args.profile or args.profile_only:
        from bench import profile

        findings = profile.run(env)
        (run_dir / "profile.md").write_text(findings)
        print(findings)
    return 0


def _nginx() -> str:
    return shutil.which("nginx") or "/usr/sbin/nginx"


def machine_info() -> dict[str, Any]:
    def version(cmd: list[str]) -> str:
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False)
        except OSError:
            return "n/a"
        lines = (done.stdout + done.stderr).strip().splitlines()
        return lines[0] if lines else "n/a"

    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    py = str(PYTHON)
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": version([py, "--version"]),
        "packages": version(
            [
                py,
                "-c",
                "import importlib.metadata as m; print(', '.join(f'{p} {m.version(p)}' for p in "
                "('aiohttp', 'uvloop', 'orjson', 'SQLAlchemy', 'aiosqlite', 'asyncpg', 'redis')))",
            ]
        ),
        "bastion_commit": version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]),
        "bastion_tree": "modified"
        if version(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"]).strip()
        not in ("", "n/a")
        else "clean",
        "nginx": version([_nginx(), "-v"]),
        "wrk": version(["wrk", "-v"]),
    }


# -- one target -----------------------------------------------------------------------------


def run_target_process(env: Env, name: str) -> tuple[Target, Any]:
    """Start a target for other uses (the profile); returns it and a function that stops it."""
    cleanup: list[Any] = []
    target = start_target(env, name, cleanup)

    def stop() -> None:
        if target.proc is not None:
            env.procs.stop(target.proc)
        _run_cleanup(cleanup)

    return target, stop


def run_target(env: Env, name: str) -> dict[str, Any]:
    outcome: dict[str, Any] = {"name": name, "label": LABELS[name]}
    cleanup: list[Any] = []
    try:
        target = start_target(env, name, cleanup)
    except Exception as exc:  # one target that cannot start must not end the run
        outcome["skipped"] = str(exc) if isinstance(exc, UnavailableError) else repr(exc)
        print(f"bench:    skipped: {exc}", file=sys.stderr)
        _run_cleanup(cleanup)
        return outcome
    outcome["notes"] = target.notes
    try:
        problem = smoke(target)
        if problem:
            outcome["skipped"] = f"smoke test failed: {problem}"
            print(f"bench:    {outcome['skipped']}", file=sys.stderr)
            return outcome
        measure(env, target, outcome)
    finally:
        if target.proc is not None:
            env.procs.stop(target.proc)
        _run_cleanup(cleanup)
    return outcome


class UnavailableError(Exception):
    """The target cannot run here (yet); the run goes on without it."""


def _run_cleanup(cleanup: list[Any]) -> None:
    for step in reversed(cleanup):
        with contextlib.suppress(Exception):
            step()


def start_target(env: Env, name: str, cleanup: list[Any]) -> Target:
    n, s = env.nginx_port, env.simulator_port
    if name == "direct":
        return Target(
            name,
            f"http://127.0.0.1:{n}/json/v1/chat/completions",
            f"http://127.0.0.1:{n}/sse/v1/chat/completions",
            f"http://127.0.0.1:{s}/v1/chat/completions",
            notes=["nginx (fixed bodies) for saturation and latency; simulator for paced streams"],
        )
    port = free_port()
    if name == "floor":
        proc = env.procs.start(
            "floor",
            [
                str(PYTHON),
                "-m",
                "bench.floor",
                "--port",
                str(port),
                "--route",
                f"/json/=http://127.0.0.1:{n}/json/",
                "--route",
                f"/sse/=http://127.0.0.1:{n}/sse/",
                "--route",
                f"/paced/=http://127.0.0.1:{s}/",
                *(["--young-gc-threshold", str(YOUNG_GC_THRESHOLD)] if env.args.floor_gc else []),
                "--client",
                env.args.floor_client,
            ],
            cpus=GATEWAY_CPU,
            cwd=ROOT,
        )
        if not wait_port(port, proc, 30):
            raise UnavailableError(f"the floor proxy did not start: {proc.tail(5)}")
        return Target(
            name,
            f"http://127.0.0.1:{port}/json/v1/chat/completions",
            f"http://127.0.0.1:{port}/sse/v1/chat/completions",
            f"http://127.0.0.1:{port}/paced/v1/chat/completions",
            proc=proc,
            notes=[
                f"Bastion's cyclic-collector settings (young threshold {YOUNG_GC_THRESHOLD:,}, "
                "start-up objects frozen)"
                if env.args.floor_gc
                else "CPython's cyclic-collector defaults (Bastion raises the young threshold: "
                "`--floor-gc` gives the floor the same)",
                "upstream client: Bastion's own (`--floor-client wire`, upstream/wire.py)"
                if env.args.floor_client == "wire"
                else "upstream client: aiohttp's (`--floor-client wire` gives it Bastion's)",
            ],
        )
    api = f"http://127.0.0.1:{port}/v1/chat/completions"
    if name.startswith("bastion"):
        return _start_bastion(env, name, port, api, cleanup)
    return _start_litellm(env, name, port, api, cleanup)


def _start_bastion(env: Env, name: str, port: int, api: str, cleanup: list[Any]) -> Target:
    workdir = env.run_dir / name
    database_url = redis_url = ""
    notes = []
    if name == "bastion-scaled":
        database = f"bastion_bench_{os.getpid()}"
        if not _psql(f'CREATE DATABASE "{database}"'):
            raise UnavailableError(
                "not yet available: PostgreSQL on 127.0.0.1:5432 is not reachable"
            )
        cleanup.append(lambda: _psql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        database_url = f"postgresql://postgres@127.0.0.1:5432/{database}"
        redis_url = f"redis://{REDIS_ADDRESS}/{env.args.redis_db}"
        _flush_redis(env.args.redis_db)
        cleanup.append(lambda: _flush_redis(env.args.redis_db))
        notes.append(
            "PostgreSQL and Redis are the machine's shared services, pinned to core "
            f"{OTHER_CPU} with the load for the run (`--stores-cpu other`)"
            if env.args.stores_cpu == "other"
            else "PostgreSQL and Redis are the machine's shared services, not pinned to a core"
        )
    setup = bastion_target.setup(
        workdir,
        env.nginx_port,
        env.simulator_port,
        port,
        database_url=database_url,
        redis_url=redis_url,
        access_log=not env.args.no_access_log,
        synchronous="FULL" if name == "bastion-embedded-full" else None,
    )
    if name == "bastion-embedded-full":
        notes.append(
            "every commit fsynced (durable against power loss); the shipped default, NORMAL, "
            "survives a gateway crash without an fsync per commit"
        )
    serve_env: dict[str, str] = dict(setup.env)
    if env.args.bastion_src is not None:
        serve_env["PYTHONPATH"] = str(env.args.bastion_src.resolve())
        notes.append(f"run from {env.args.bastion_src} (not the repository's src/)")
    try:
        key = bastion_target.provision(serve_env)
    except RuntimeError as exc:
        if name == "bastion-scaled":
            raise UnavailableError(f"not yet available: {_first_line(str(exc))}") from None
        raise UnavailableError(f"provisioning failed: {_first_error(str(exc))}") from None
    proc = env.procs.start(
        name, bastion_target.serve_command(), cpus=GATEWAY_CPU, env=serve_env, cwd=workdir
    )
    if not wait_port(port, proc, 60):
        reason = _first_error(proc.tail(30))
        env.procs.stop(proc)
        if name == "bastion-scaled":
            raise UnavailableError(
                f"not yet available: `bastion serve` refused the config: {reason}"
            )
        raise UnavailableError(f"bastion serve did not start: {reason}")
    notes.append(
        "access log on (one JSON line per request)"
        if not env.args.no_access_log
        else "access log off"
    )
    stores = (database_url, REDIS_ADDRESS) if database_url else None
    return Target(name, api, api, api, key=key, proc=proc, notes=notes, stores=stores)


def _start_litellm(env: Env, name: str, port: int, api: str, cleanup: list[Any]) -> Target:
    per_key = name == "litellm-keys"
    workdir = env.run_dir / name
    # a database of its own: in turns it starts beside Bastion scaled out, whose db it would
    # otherwise flush
    db = env.args.redis_db + 1
    redis_url = f"redis://{REDIS_ADDRESS}/{db}"
    if per_key:
        _flush_redis(db)
        cleanup.append(lambda: _flush_redis(db))
    config = litellm_target.write_config(
        workdir, env.nginx_port, env.simulator_port, per_key=per_key, redis_url=redis_url
    )
    proc = env.procs.start(
        name,
        litellm_target.serve_command(config, port),
        cpus=GATEWAY_CPU,
        env=litellm_target.serve_env(workdir),
        cwd=workdir,
    )
    if not wait_port(port, proc, 240):
        reason = _first_error(proc.tail(30))
        env.procs.stop(proc)
        raise UnavailableError(f"LiteLLM did not start: {reason}")
    notes = ["one uvicorn worker"]
    if per_key:
        notes.append(
            "per-key auth via LiteLLM's custom-auth hook (its PostgreSQL key store needs a Prisma "
            "engine downloaded at run time, impossible here); Redis rate limiter, key budget "
            "checks and cost tracking on"
        )
    return Target(name, api, api, api, key=litellm_target.api_key(per_key), proc=proc, notes=notes)


def _first_line(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), text)[:300]


def _first_error(text: str) -> str:
    """The most telling line of a failed start: the last one that names an error."""
    for line in reversed(text.splitlines()):
        if "error" in line.lower():
            return line.strip()[:300]
    return _first_line(text) if text else "no output"


def _psql(sql: str) -> bool:
    try:
        done = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc", sql],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except OSError:
        return False
    return done.returncode == 0


def _flush_redis(db: int) -> None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(
            ["redis-cli", "-h", "127.0.0.1", "-n", str(db), "flushdb"],
            capture_output=True,
            timeout=10,
            check=False,
        )


def smoke(target: Target) -> str | None:
    """One request of each kind must succeed before anything is measured."""
    checks = (
        (target.unary_url, request_body(MODEL_JSON), b'"choices"'),
        (target.stream_url, request_body(MODEL_SSE, stream=True), b"[DONE]"),
        (target.paced_url, request_body(MODEL_PACED, stream=True), b"[DONE]"),
    )
    headers = {"Content-Type": "application/json"}
    if target.key:
        headers["Authorization"] = f"Bearer {target.key}"
    for url, body, expect in checks:
        problem = ""
        for _ in range(20):
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    data = response.read()
                if expect in data:
                    problem = ""
                    break
                problem = f"{url}: unexpected answer {data[:200]!r}"
            except urllib.error.HTTPError as exc:
                problem = f"{url}: HTTP {exc.code} {exc.read()[:300]!r}"
            except OSError as exc:
                problem = f"{url}: {exc}"
            time.sleep(0.5)
        if problem:
            return problem
    return None


# -- measurements ---------------------------------------------------------------------------


def _groups(env: Env, target: Target) -> dict[str, int]:
    groups = {"upstream": env.nginx.pid, "simulator": env.simulator.pid}
    if target.proc is not None:
        groups["gateway"] = target.proc.pid
    return groups


def measure(env: Env, target: Target, outcome: dict[str, Any]) -> None:
    args = env.args
    groups = _groups(env, target)
    wrk: dict[str, Any] = {"cpus": OTHER_CPU, "pids_file": env.pids_file}
    top = max(args.connection_list)
    # Warm-up, not counted: lazy imports, pools, caches (LiteLLM needs several seconds).
    run_wrk(target.unary_url, env.bodies.unary, key=target.key, seconds=6, connections=top, **wrk)
    run_wrk(target.stream_url, env.bodies.stream, key=target.key, seconds=3, connections=top, **wrk)
    saturation: dict[str, Any] = {}
    for kind, url, body in (
        ("unary", target.unary_url, env.bodies.unary),
        ("stream", target.stream_url, env.bodies.stream),
    ):
        runs = []
        for connections in args.connection_list:
            meter = CpuMeter(groups)
            result = run_wrk(
                url, body, key=target.key, seconds=args.sat_seconds, connections=connections, **wrk
            )
            shares = meter.shares()
            runs.append(
                {
                    "connections": connections,
                    **result.as_dict(),
                    **{f"{g}_cpu_share": v for g, v in shares.items()},
                    "rps_per_core": per_core(result.rps, shares.get("gateway")),
                }
            )
            each_core = runs[-1]["rps_per_core"]
            print(
                f"bench:    saturation {kind}, {connections} connections: {result.rps:,.0f} "
                f"req/s ({each_core or 0:,.0f} per core), {result.error_count} errors, gateway "
                f"CPU {shares.get('gateway', 0):.0%}, wrk CPU {result.cpu_share:.0%}",
                file=sys.stderr,
                flush=True,
            )
        best = max(runs, key=lambda r: float(r["rps"]))
        saturation[kind] = {**best, "runs": runs}
    outcome["saturation"] = saturation
    sat_rps = saturation["unary"]["rps"]

    if sat_rps < args.rate * 1.25:
        outcome["latency"] = {
            "skipped": f"saturates at {sat_rps:,.0f} req/s, too close to the fixed rate "
            f"({args.rate:g} req/s) for latency to mean anything"
        }
    else:
        log = target.proc.log if target.proc and target.name.startswith("bastion") else None
        offset = log_offset(log) if log else 0
        since = time.time() + LOAD_WARMUP_S + 0.5  # (the generator's own start-up)
        outcome["latency"] = _open_loop(
            env, target, "latency", args.rate, args.latency_seconds, groups
        )
        _say("latency", outcome["latency"])
        if log is not None:
            parts = breakdown(read_lines(log, offset), since)
            outcome["latency"]["gateway_log"] = parts
            _say_parts(parts)
        if target.stores is not None:
            outcome["store_probe"] = _store_probe(env, target.stores)
    outcome["paced"] = _open_loop(
        env, target, "paced", args.stream_rate, args.stream_seconds, groups, paced=True
    )
    _say("paced streams", outcome["paced"])
    if target.proc is not None and args.soak_seconds > 0:
        outcome["soak"] = _soak(env, target, sat_rps, groups)


def _say(what: str, result: dict[str, Any]) -> None:
    lat = result.get("latency_ms") or {}
    ft = result.get("first_token_ms") or {}
    print(
        f"bench:    {what}: p50 {lat.get('p50', ft.get('p50', float('nan'))):.2f} ms, "
        f"p99 {lat.get('p99', ft.get('p99', float('nan'))):.2f} ms, "
        f"errors {result.get('error_rate', 0):.2%}, generator CPU "
        f"{result.get('generator_cpu_share', 0):.0%}",
        file=sys.stderr,
        flush=True,
    )


def _say_parts(parts: dict[str, Any]) -> None:
    overhead, admit, commit, own = (
        report.p50_p99(parts.get(part))
        for part in ("overhead_ms", "admit_ms", "commit_ms", "own_ms")
    )
    print(
        f"bench:    its access log, p50 / p99 ms: overhead {overhead}, admission {admit}, "
        f"commit {commit}, own {own}",
        file=sys.stderr,
        flush=True,
    )


def _store_probe(env: Env, stores: tuple[str, str]) -> dict[str, Any]:
    """PostgreSQL's commit and Redis's round trip alone, at the fixed rate (bench.storeprobe)."""
    args = env.args
    out = env.run_dir / "store-probe.json"
    dsn, redis = stores
    cmd = [
        str(PYTHON),
        "-m",
        "bench.storeprobe",
        "--dsn",
        dsn,
        "--redis",
        redis,
        "--rate",
        f"{args.rate:g}",
        "--seconds",
        f"{STORE_PROBE_S:g}",
        "--out",
        str(out),
    ]
    proc = env.procs.start("store-probe", cmd, cpus=OTHER_CPU, cwd=ROOT)
    proc.popen.wait()
    env.procs.stop(proc)
    if not out.exists():
        return {"error": f"store probe failed: {proc.tail(5)}"}
    result: dict[str, Any] = json.loads(out.read_text())
    print(
        f"bench:    stores alone at {args.rate:g}/s, p50 / p99 ms: PostgreSQL commit "
        f"{report.p50_p99(result.get('postgres_commit_ms'))}, settlement batch "
        f"{report.p50_p99(result.get('settlement_ms'))}, Redis round trip "
        f"{report.p50_p99(result.get('redis_round_trip_ms'))}",
        file=sys.stderr,
        flush=True,
    )
    return result


def _load_command(
    target: Target,
    out: Path,
    *,
    rate: float,
    seconds: float,
    body: Path,
    url: str,
    stream_body: Path | None = None,
    stream_every: int = 0,
    warmup: float = LOAD_WARMUP_S,
) -> list[str]:
    cmd = [
        str(PYTHON),
        "-m",
        "bench.load",
        "--url",
        url,
        "--body-file",
        str(body),
        "--rate",
        f"{rate:g}",
        "--seconds",
        f"{seconds:g}",
        "--warmup",
        f"{warmup:g}",
        "--out",
        str(out),
    ]
    if target.key:
        cmd += ["--key", target.key]
    if stream_body is not None:
        cmd += ["--stream-body-file", str(stream_body), "--stream-every", str(stream_every)]
    return cmd


def _open_loop(
    env: Env,
    target: Target,
    phase: str,
    rate: float,
    seconds: float,
    groups: dict[str, int],
    *,
    paced: bool = False,
) -> dict[str, Any]:
    out = env.run_dir / f"{target.name}-{phase}.json"
    if paced:
        cmd = _load_command(
            target,
            out,
            rate=rate,
            seconds=seconds,
            body=env.bodies.paced,
            url=target.paced_url,
            stream_body=env.bodies.paced,
            stream_every=1,
        )
    else:
        cmd = _load_command(
            target, out, rate=rate, seconds=seconds, body=env.bodies.unary, url=target.unary_url
        )
    meter = CpuMeter(groups)
    proc = env.procs.start(f"load-{target.name}-{phase}", cmd, cpus=OTHER_CPU, cwd=ROOT)
    proc.popen.wait()
    env.procs.stop(proc)
    shares = meter.shares()
    if not out.exists():
        return {"error": f"load generator failed: {proc.tail(10)}"}
    result: dict[str, Any] = json.loads(out.read_text())
    for group, share in shares.items():
        result[f"{group}_cpu_share"] = share
    if "gateway" in shares and rate:
        result["gateway_cpu_us_per_request"] = shares["gateway"] / rate * 1e6
    return result


def _soak(env: Env, target: Target, sat_rps: float, groups: dict[str, int]) -> dict[str, Any]:
    args = env.args
    assert target.proc is not None
    rate = min(args.soak_rate, max(1.0, round(sat_rps * 0.5)))
    out = env.run_dir / f"{target.name}-soak.json"
    cmd = _load_command(
        target,
        out,
        rate=rate,
        seconds=args.soak_seconds,
        body=env.bodies.unary,
        url=target.unary_url,
        stream_body=env.bodies.stream,
        stream_every=10,
        warmup=0.0,
    )
    print(
        f"bench:    soak: {args.soak_seconds:g} s at {rate:g} req/s (1 in 10 streamed)",
        file=sys.stderr,
        flush=True,
    )
    pgid = target.proc.pid
    # At rest, after the upstream pool's idle connections expired (30 s keep-alive): a leak
    # is what is still open then, compared with the same reading before the soak.
    time.sleep(args.rest_seconds)
    fds_idle_before = fd_count(pgid)
    samples: list[dict[str, float]] = []
    start = time.monotonic()
    proc = env.procs.start(f"load-{target.name}-soak", cmd, cpus=OTHER_CPU, cwd=ROOT)
    while proc.popen.poll() is None:
        samples.append(
            {
                "t": time.monotonic() - start,
                "rss_mib": rss_bytes(pgid) / 2**20,
                "fds": float(fd_count(pgid)),
                "threads": float(thread_count(pgid)),
            }
        )
        time.sleep(1.0)
    env.procs.stop(proc)
    time.sleep(args.rest_seconds)
    fds_idle_after = fd_count(pgid)
    result: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    rss = [s["rss_mib"] for s in samples]
    base, peak_after, grown = growth(rss)
    tail = rss[-max(1, len(rss) // 10) :] if rss else []
    result.update(
        {
            "rate": rate,
            "samples": samples,
            "rss_peak_mib": max(rss) if rss else None,
            "rss_after_warmup_mib": base,
            "rss_peak_after_warmup_mib": peak_after,
            "rss_steady_mib": sum(tail) / len(tail) if tail else None,
            "rss_growth": grown,
            # Idle before and after the soak: under load the count follows the number of
            # open client connections; a leak shows as a difference at rest.
            "fds_idle_before": fds_idle_before,
            "fds_idle_after": fds_idle_after,
            "rest_seconds": args.rest_seconds,
            "fds_peak": max(s["fds"] for s in samples) if samples else None,
            "threads_end": samples[-1]["threads"] if samples else None,
        }
    )
    print(
        f"bench:    soak: RSS peak {result['rss_peak_mib']:.1f} MiB, steady "
        f"{result['rss_steady_mib']:.1f} MiB, growth after warm-up {grown:+.1%}, "
        f"errors {result.get('error_rate', 0):.2%}",
        file=sys.stderr,
        flush=True,
    )
    return result

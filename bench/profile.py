"""Profile Bastion (embedded, or scaled out with ``--profile-target``) under load with
py-spy: where its core's time goes.

Three recordings, each while the load runs: saturation non-streaming and streaming (wrk), and
the fixed moderate rate (open loop), where per-request costs that batching hides at saturation
(one SQLite transaction per settlement batch) show.  py-spy runs on core 1 beside the load.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import flame
from bench.procs import pinned
from bench.wrk import run_wrk

if TYPE_CHECKING:
    from bench.runner import Env

PY_SPY_VERSION = "0.4.3"


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        print(f"bench: installing py-spy=={PY_SPY_VERSION} into .venv", file=sys.stderr)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                f"py-spy=={PY_SPY_VERSION}",
            ],
            check=True,
        )
    return found


def _record(pid: int, seconds: float, out: Path, cpus: str | None) -> threading.Thread:
    cmd = pinned(
        [
            py_spy(),
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, round(seconds))),
            "--rate",
            "250",
            "--format",
            "raw",
            "--output",
            str(out),
            "--nonblocking",
            "--gil",  # only the thread holding the GIL: where the core's Python time goes
        ],
        cpus,
    )

    def work() -> None:
        subprocess.run(cmd, capture_output=True, check=False)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def run(env: Env) -> str:
    from bench.runner import LABELS, OTHER_CPU, ROOT, _load_command, run_target_process

    seconds = env.args.profile_seconds
    name = env.args.profile_target
    target, stop = run_target_process(env, name)
    sections: list[str] = [f"# Profile: {LABELS[name]} (py-spy)", ""]
    try:
        assert target.proc is not None
        pid = target.proc.pid
        wrk: dict[str, Any] = {
            "connections": max(env.args.connection_list),
            "cpus": OTHER_CPU,
            "pids_file": env.pids_file,
        }
        run_wrk(target.unary_url, env.bodies.unary, key=target.key, seconds=5, **wrk)
        for kind, url, body in (
            ("unary", target.unary_url, env.bodies.unary),
            ("stream", target.stream_url, env.bodies.stream),
        ):
            out = env.run_dir / f"profile-{kind}.txt"
            recorder = _record(pid, seconds, out, OTHER_CPU)
            result = run_wrk(url, body, key=target.key, seconds=seconds + 2, **wrk)
            recorder.join()
            sections += _section(f"saturation, {kind}: {result.rps:,.0f} req/s", out)
        out = env.run_dir / "profile-fixed-rate.txt"
        load_out = env.run_dir / "profile-fixed-rate-load.json"
        cmd = _load_command(
            target,
            load_out,
            rate=env.args.rate,
            seconds=seconds + 3,
            body=env.bodies.unary,
            url=target.unary_url,
        )
        proc = env.procs.start("profile-load", cmd, cpus=OTHER_CPU, cwd=ROOT)
        recorder = _record(pid, seconds, out, OTHER_CPU)
        recorder.join()
        proc.popen.wait()
        env.procs.stop(proc)
        sections += _section(f"fixed rate, {env.args.rate:g} req/s, non-streaming", out)
    finally:
        stop()
    return "\n".join(sections) + "\n"


def _section(title: str, path: Path) -> list[str]:
    if not path.exists():
        return [f"## {title}", "", "py-spy wrote no profile (is ptrace allowed here?)", ""]
    profile = flame.read(path)
    return [
        f"## {title}",
        "",
        f"{profile.samples} samples; raw stacks: {path.name}",
        "",
        "Own time (leaf frames, by line):",
        "",
        *flame.table(profile, profile.own_lines, 20, None),
        "",
        "Inclusive time, Bastion's own functions:",
        "",
        *flame.table(profile, profile.total, 25, r"\(bastion/"),
        "",
        "Inclusive time, libraries:",
        "",
        *flame.table(
            profile,
            profile.total,
            20,
            r"\((aiohttp|sqlalchemy|aiosqlite|orjson|logging|redis|asyncpg)",
        ),
        "",
    ]

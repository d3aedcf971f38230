"""Processes the benchmark starts: each leads its own process group, pinned to a core, and is
stopped (TERM, then KILL) at the end; plus CPU, RSS and fd readings from /proc."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


_CORES = len(os.sched_getaffinity(0))  # read at import, before the driver pins itself


def cores() -> int:
    """Cores this run may use (the driver's own affinity before it pinned itself)."""
    return _CORES


def pinned(cmd: Sequence[str], cpus: str | None) -> list[str]:
    """``cmd`` under ``taskset -c cpus`` when the machine has the cores and taskset exists."""
    if cpus is None or cores() < 2 or not _has("taskset"):
        return list(cmd)
    return ["taskset", "-c", cpus, *cmd]


def _has(tool: str) -> bool:
    return any(
        os.access(os.path.join(d, tool), os.X_OK) for d in os.environ.get("PATH", "").split(":")
    )


PRIORITY = 0
"""How much to raise the priority of every process the run starts (root only; 0: leave it)."""


def boost(pid: int) -> None:
    """Raise a process's priority against other work on the machine.

    Each process the run starts leads a new session, and with the kernel's autogroup
    scheduling a session's CPU share is set by its autogroup's nice value, not by the nice
    value of its processes; so both are raised."""
    if PRIORITY <= 0:
        return
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, pid, -PRIORITY)
    with contextlib.suppress(OSError), open(f"/proc/{pid}/autogroup", "w") as group:
        group.write(str(-PRIORITY))


def set_priority(raise_by: int) -> None:
    """Boost this process and every process started after this call (see :func:`boost`)."""
    global PRIORITY
    PRIORITY = max(0, raise_by)
    boost(os.getpid())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Processes:
    """Starts processes in new sessions and guarantees they are gone at :meth:`stop_all`."""

    def __init__(self, logs: Path) -> None:
        self._logs = logs
        self._running: list[Proc] = []
        self._pids_file = os.environ.get("BENCH_PIDS_FILE")

    def start(
        self,
        name: str,
        cmd: Sequence[str],
        *,
        cpus: str | None,
        env: Mapping[str, str | None] | None = None,
        cwd: Path | None = None,
    ) -> Proc:
        """Start ``cmd`` in a new session; an ``env`` value of None removes that variable."""
        environ = dict(os.environ)
        for variable, value in (env or {}).items():
            if value is None:
                environ.pop(variable, None)
            else:
                environ[variable] = value
        self._logs.mkdir(parents=True, exist_ok=True)
        log = self._logs / f"{name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                pinned(cmd, cpus),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=environ,
                cwd=cwd,
                start_new_session=True,
            )
        if self._pids_file:
            with open(self._pids_file, "a") as pids:
                pids.write(f"{popen.pid}\n")
        boost(popen.pid)
        proc = Proc(name, popen, log)
        self._running.append(proc)
        return proc

    def stop(self, proc: Proc, grace_s: float = 10.0) -> None:
        if proc in self._running:
            self._running.remove(proc)
        _signal_group(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(timeout=grace_s)
        _signal_group(proc.pid, signal.SIGKILL)  # stragglers in the group, if any
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(timeout=5)

    def stop_all(self) -> None:
        for proc in list(reversed(self._running)):
            self.stop(proc)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def wait_port(port: int, proc: Proc | None, timeout_s: float) -> bool:
    """True once something accepts connections on 127.0.0.1:port (False if proc died)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            return False
        with socket.socket() as probe:
            probe.settimeout(0.5)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.1)
    return False


# -- /proc readings for a process group -----------------------------------------------------


def group_pids(pgid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[2]) == pgid:  # field 5 of stat: the process group
            found.append(int(entry))
    return found


def cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds used so far by the live processes of a group."""
    total = 0
    for pid in group_pids(pgid):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLK_TCK


def rss_bytes(pgid: int) -> int:
    total = 0
    for pid in group_pids(pgid):
        try:
            statm = Path(f"/proc/{pid}/statm").read_text().split()
        except OSError:
            continue
        total += int(statm[1]) * PAGE
    return total


def fd_count(pgid: int) -> int:
    total = 0
    for pid in group_pids(pgid):
        with contextlib.suppress(OSError):
            total += len(os.listdir(f"/proc/{pid}/fd"))
    return total


def thread_count(pgid: int) -> int:
    total = 0
    for pid in group_pids(pgid):
        with contextlib.suppress(OSError):
            total += len(os.listdir(f"/proc/{pid}/task"))
    return total


class CpuMeter:
    """CPU share of some process groups over an interval (1.0 = one core fully busy)."""

    def __init__(self, groups: Mapping[str, int]) -> None:
        self._groups = dict(groups)
        self._start = time.monotonic()
        self._cpu = {name: cpu_seconds(pgid) for name, pgid in self._groups.items()}

    def shares(self) -> dict[str, float]:
        wall = time.monotonic() - self._start
        return {
            name: (cpu_seconds(pgid) - self._cpu[name]) / wall if wall else 0.0
            for name, pgid in self._groups.items()
        }

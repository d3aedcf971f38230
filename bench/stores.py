"""The machine's PostgreSQL and Redis moved to the load's core for a run, and back after.

By default the stores are the machine's shared services, scheduled on either core: on two
cores they then take turns with the gateway on its own.  ``bench/run --stores-cpu other``
pins every process and thread of theirs to the other core for the run (new PostgreSQL
backends inherit the postmaster's mask), as a deployment with the stores on their own
machines would have it, and puts every mask back when the run ends.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable

SERVICES = ("postgres", "redis-server")


def _pids(name: str) -> list[int]:
    found = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True, check=False)
    return [int(pid) for pid in found.stdout.split()]


def _threads(pid: int) -> list[int]:
    try:
        return [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []


def pin(cpu: int) -> Callable[[], None]:
    """Pin the stores' threads to ``cpu``; returns what puts their masks back.  Raises
    PermissionError unless the run may change other users' processes (root)."""
    saved: dict[int, set[int]] = {}
    for name in SERVICES:
        for pid in _pids(name):
            for tid in _threads(pid):
                with contextlib.suppress(ProcessLookupError):
                    saved[tid] = os.sched_getaffinity(tid)
                    os.sched_setaffinity(tid, {cpu})
    if not saved:
        raise LookupError("neither PostgreSQL nor Redis runs on this machine")
    widest = set().union(*saved.values())

    def restore() -> None:
        # Backends started during the run inherited the pin: they get the widest mask back.
        for name in SERVICES:
            for pid in _pids(name):
                for tid in _threads(pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.sched_setaffinity(tid, saved.get(tid, widest))

    return restore

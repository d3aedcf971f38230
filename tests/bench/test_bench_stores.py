"""bench.stores: the stores' threads pinned for a run, and every mask put back after."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from bench import stores

STAND_IN = (
    "import sys, threading, time\n"
    "for _ in range({threads}): threading.Thread(target=time.sleep, args=(60,)).start()\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


def _start(threads: int) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", STAND_IN.format(threads=threads)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    assert child.stdout.readline() == "ready\n"
    return child


@pytest.fixture
def service(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[subprocess.Popen[str]]]:
    """Stand-ins for the stores, found under their names: one process alone, one with threads."""
    children = {"postgres": [_start(0)], "redis-server": [_start(3)]}
    monkeypatch.setattr(stores, "_pids", lambda name: [c.pid for c in children[name]])
    everyone = [c for group in children.values() for c in group]
    try:
        yield everyone
    finally:
        for child in everyone:
            child.kill()
            child.wait()
            if child.stdout is not None:
                child.stdout.close()


def _masks(child: subprocess.Popen[str]) -> list[set[int]]:
    return [os.sched_getaffinity(tid) for tid in stores._threads(child.pid)]


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores to pin to one")
def test_every_thread_is_pinned_then_put_back(service: list[subprocess.Popen[str]]) -> None:
    before = {child.pid: _masks(child) for child in service}
    assert len(before[service[1].pid]) == 4
    target = min(os.sched_getaffinity(0))
    restore = stores.pin(target)
    for child in service:
        assert all(mask == {target} for mask in _masks(child))
    restore()
    assert {child.pid: _masks(child) for child in service} == before


def test_no_store_running_is_said(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stores, "_pids", lambda name: [])
    with pytest.raises(LookupError, match="neither PostgreSQL nor Redis"):
        stores.pin(0)

"""Loopback ports for the servers the tests start, never the same one twice in a run.

A port the kernel picks for ``bind(0)`` is released before the server under test binds it,
and in that gap another xdist worker's probe, or the source port of any outgoing connection
(both come from the kernel's ephemeral range), can take it: a test then talks to another
test's server, or its server cannot start.  So the ports come from below the ephemeral
range, from a block of its own per worker, each handed out once per run (from a random
place in the block, so that two runs at once on one machine seldom meet; a port another run
already listens on fails the probe and is skipped).
"""

from __future__ import annotations

import itertools
import random
import socket
from pathlib import Path

from tests.support.services import worker_number

FIRST = 20_000
BLOCK = 1_500
"""Ports per worker: 8 workers fit between FIRST and the usual ephemeral range (32768)."""
WORKERS = 8


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


_start = FIRST + (worker_number() % WORKERS) * BLOCK
_end = min(_start + BLOCK, _ephemeral_low())
_offset = random.randrange(max(1, _end - _start))
_candidates = itertools.count()


def free_port() -> int:
    """A loopback port nothing listens on, not handed out before in this run."""
    if _end <= _start:  # a machine whose ephemeral range starts low: the kernel's choice
        return _kernel_port()
    for handed in _candidates:
        if handed >= _end - _start:
            break
        port = _start + (_offset + handed) % (_end - _start)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue  # the machine's own service, or another run, holds it
            return port
    raise RuntimeError(f"no free port left in {_start}–{_end} for this test worker")


def _kernel_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])

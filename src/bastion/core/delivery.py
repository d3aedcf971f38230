"""The last bytes of a response, sent by the settlement writer the moment their charge commits.

Commit before completion leaves a window: the charge is durable, the bytes are not yet sent.
A crash inside it charges a client who never got the answer.  Waking the request's task after
the commit takes several event-loop turns under load, so the window was milliseconds wide; a
``kill -9`` under load landed in it.  Instead the response's final bytes (already rendered,
aiohttp's bookkeeping advanced as if sent) are handed to the writer with the charge:

- when every commit runs in the writer thread (SQLite with ``synchronous = FULL``), the
  thread writes them to a duplicate of the connection's descriptor right after ``COMMIT``
  returns, microseconds later (plain-text connections only: TLS records are the event
  loop's to produce);
- in any case the event loop writes what is left right after the commit, in the same step
  that resolves the charge's future, before any other task runs (on SQLite with the default
  ``NORMAL`` the commit itself runs inline in that step).

A duplicate descriptor, never the connection's own number: if the connection closes meanwhile
its number may be reused by another client's connection, and the bytes must not go there.
Nobody else writes to the connection meanwhile: its request is waiting for this charge, and
bytes are handed over only when nothing else was queued on the connection.
"""

from __future__ import annotations

import os
from typing import Protocol


class Writable(Protocol):
    def write(self, data: bytes | bytearray | memoryview) -> None: ...

    def is_closing(self) -> bool: ...


class Delivery:
    __slots__ = ("_done", "_out", "_sent", "from_thread")

    def __init__(self) -> None:
        self._out: tuple[bytes, Writable, int] | None = None
        self._sent = 0
        self._done = False
        self.from_thread = False
        """Set by the writer: its commits run in a thread, which sends the bytes itself and
        needs a duplicate descriptor for that (otherwise none is made: two system calls
        saved per answer)."""

    @property
    def done(self) -> bool:
        """The writer has finished with this charge (sent the bytes, or failed to commit)."""
        return self._done

    def hand_over(self, data: bytes, transport: Writable, fd: int) -> bool:
        """(event loop) Give the writer the bytes to send once the charge commits; ``fd`` is a
        duplicate the delivery now owns, or -1.  False if the writer has already finished: the
        caller sends the bytes itself after the charge's outcome."""
        if self._done:
            if fd >= 0:
                os.close(fd)
            return False
        self._out = (data, transport, fd)
        return True

    def send_now(self) -> None:
        """(writer thread, right after COMMIT) Write as much as the socket takes at once."""
        out = self._out  # one read: the loop may hand over concurrently, then it sends all
        if out is None or out[2] < 0:
            return
        try:
            self._sent = os.write(out[2], out[0])
        except OSError:  # full socket buffer or a client gone: the loop sends or gives up
            self._sent = 0

    def complete(self) -> None:
        """(event loop, after the commit) Send what the thread did not, release the duplicate."""
        if self._done:
            return
        self._done = True
        out = self._out
        if out is None:
            return
        data, transport, fd = out
        if fd >= 0:
            os.close(fd)
        if self._sent < len(data) and not transport.is_closing():
            transport.write(memoryview(data)[self._sent :])

    def discard(self) -> None:
        """(event loop) The charge could not be written: nothing is sent."""
        if self._done:
            return
        self._done = True
        out = self._out
        if out is not None and out[2] >= 0:
            os.close(out[2])

"""One gateway process per embedded database: in-process limits and holds are exact only if
no other gateway admits requests against the same balances."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from bastion.errors import ConfigError


class ProcessLock:
    """An exclusive ``flock`` beside the database file, held while the gateway runs (the
    kernel releases it if the process dies, so a crash never leaves a stale lock)."""

    def __init__(self, database_path: Path) -> None:
        self.path = database_path.with_name(database_path.name + ".gateway.lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(
                f"another gateway process is already serving {self.path.with_suffix('')}: "
                "in-process limits and holds would not be exact across two processes. "
                "Run one process per embedded database, or share PostgreSQL and Redis "
                "(storage.database_url and storage.redis_url) to run several replicas."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def holder(self) -> int | None:
        """The pid of the gateway holding the lock, or None if nobody serves this database."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode().strip()
            return int(text) if text.isdigit() else None
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

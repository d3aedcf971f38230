"""Outages on demand: a Redis server of the test's own (stop it, start it again empty) and a
TCP proxy in front of PostgreSQL (cut it, restore it) — the shared services stay untouched."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.support.ports import free_port


class OwnRedis:
    """``redis-server`` on a port of its own, keeping nothing on disk (like the machine's)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self._workdir = workdir
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self._process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self._workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(200):
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1),
            ):
                return
            time.sleep(0.02)
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._process = None


class CuttableProxy:
    """Forwards a local port to PostgreSQL until cut: then every connection is dropped and new
    ones are refused, as if the server had stopped.

    :meth:`break_next` breaks only the connection that next sends a given marker (a COMMIT,
    a request id in a statement's parameters), at the worst moment: with the statement
    delivered and its reply lost, or with the statement lost."""

    def __init__(self, target_port: int = 5432) -> None:
        self.port = free_port()
        self._target = target_port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._trap: tuple[bytes, bool] | None = None
        self._trap_times = 0
        self._cut_with_trap = False
        self.broken = asyncio.Event()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    def break_next(
        self, marker: bytes, *, delivered: bool, then_cut: bool = False, times: int = 1
    ) -> None:
        """``then_cut``: the whole server goes away with that connection; ``times``: that many
        sends of the marker are broken."""
        self._trap = (marker, delivered)
        self._trap_times = times
        self._cut_with_trap = then_cut
        self.broken.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        replies_muted = False

        async def trapped(data: bytes) -> bool:
            nonlocal replies_muted
            if self._trap is None or self._trap[0] not in data:
                return False
            delivered = self._trap[1]
            self._trap_times -= 1
            if self._trap_times <= 0:
                self._trap = None
            if delivered:
                replies_muted = True
                up_writer.write(data)
                await up_writer.drain()
                await asyncio.sleep(0.3)  # the server commits; its reply is never passed on
            writer.transport.abort()
            up_writer.transport.abort()
            if self._cut_with_trap:
                self._cut_now()
            self.broken.set()
            return True

        async def pipe(
            source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, upward: bool
        ) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await source.read(65536):
                    if upward and await trapped(data):
                        return
                    if not upward and replies_muted:
                        continue
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(
            pipe(reader, up_writer, upward=True), pipe(up_reader, writer, upward=False)
        )
        self._writers.difference_update((writer, up_writer))

    async def cut(self) -> None:
        self._cut_now()

    def _cut_now(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            transport = writer.transport
            transport.abort()
        self._writers.clear()

    async def restore(self) -> None:
        await self.start()

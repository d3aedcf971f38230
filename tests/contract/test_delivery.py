"""Commit before completion, with the window closed: a response's last bytes are handed to the
settlement writer and leave right after the commit, before the charge's future resolves (on
SQLite from the writer thread itself).  On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from bastion.core.delivery import Delivery
from bastion.storage.sql.database import Database
from bastion.storage.sql.sqlite_batch import SqliteBatchWriter
from tests.contract.support import new_account, until
from tests.contract.test_ledger import charge


class Recorder:
    """Stands in for the event loop's transport of the connection."""

    def __init__(self) -> None:
        self.written = b""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def is_closing(self) -> bool:
        return False


@pytest.fixture
def connection() -> Iterator[tuple[socket.socket, socket.socket]]:
    server, client = socket.socketpair()
    server.setblocking(False)  # as the event loop's sockets are
    yield server, client
    server.close()
    client.close()


def received(client: socket.socket) -> bytes:
    client.setblocking(False)
    data = b""
    while True:
        try:
            part = client.recv(1 << 20)
        except BlockingIOError:
            return data
        if not part:
            return data
        data += part


def is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


async def test_the_answer_leaves_before_the_charge_resolves(
    database: Database, connection: tuple[socket.socket, socket.socket]
) -> None:
    server, client = connection
    account = await new_account(database, balance=10_000)
    transport, delivery = Recorder(), Delivery()
    durable = database.settlements.enqueue(charge(f"req_d_{account}", account, 100), delivery)
    assert not delivery.from_thread  # NORMAL and PostgreSQL commit on the event loop
    fd = os.dup(server.fileno())
    assert delivery.hand_over(b"HTTP/1.1 200 OK\r\n\r\nanswer", transport, fd)
    on_socket_when_resolved: list[bytes] = []
    durable.add_done_callback(lambda _: on_socket_when_resolved.append(received(client)))
    assert await durable == 2
    sent = on_socket_when_resolved[0] + transport.written
    assert sent == b"HTTP/1.1 200 OK\r\n\r\nanswer"  # all of it, once, before the future
    assert delivery.done
    assert not is_open(fd)  # the duplicate is released


async def test_a_batch_that_finds_the_database_locked_sends_from_the_writer_thread(
    database: Database, connection: tuple[socket.socket, socket.socket]
) -> None:
    """SQLite commits inline on the event loop unless that could block: with the database
    locked by another writer the batch waits in the writer thread, which sends the bytes it
    was given a descriptor for right after its COMMIT (as every batch does with FULL)."""
    if database.engine.url.get_backend_name() != "sqlite":
        pytest.skip("PostgreSQL commits on the event loop's connection")
    server, client = connection
    account = await new_account(database, balance=10_000)
    other = sqlite3.connect(str(database.engine.url.database), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # e.g. `bastion credits grant` in another process
    transport, delivery = Recorder(), Delivery()
    durable = database.settlements.enqueue(charge(f"req_k_{account}", account, 100), delivery)
    assert delivery.hand_over(b"answer", transport, os.dup(server.fileno()))
    asyncio.get_running_loop().call_later(0.2, other.execute, "COMMIT")
    assert await durable == 2
    other.close()
    assert received(client) == b"answer"  # from the thread, right after its COMMIT
    assert transport.written == b""


async def test_what_the_socket_does_not_take_follows_through_the_loop(
    database: Database, connection: tuple[socket.socket, socket.socket]
) -> None:
    server, client = connection
    account = await new_account(database, balance=10_000)
    big = os.urandom(16 << 20)  # far more than a socket buffer holds
    transport, delivery = Recorder(), Delivery()
    durable = database.settlements.enqueue(charge(f"req_b_{account}", account, 100), delivery)
    assert delivery.hand_over(big, transport, os.dup(server.fileno()))
    await durable
    direct = received(client)
    assert len(direct) < len(big)
    assert direct + transport.written == big  # in order, nothing twice


async def test_bytes_handed_over_after_the_commit_are_sent_by_the_caller(
    database: Database, connection: tuple[socket.socket, socket.socket]
) -> None:
    server, _client = connection
    account = await new_account(database, balance=10_000)
    delivery = Delivery()
    await database.settlements.enqueue(charge(f"req_l_{account}", account, 100), delivery)
    fd = os.dup(server.fileno())
    assert not delivery.hand_over(b"late", Recorder(), fd)
    assert not is_open(fd)


def test_a_charge_that_failed_sends_nothing(
    connection: tuple[socket.socket, socket.socket],
) -> None:
    server, client = connection
    transport, delivery = Recorder(), Delivery()
    fd = os.dup(server.fileno())
    assert delivery.hand_over(b"answer", transport, fd)
    delivery.discard()
    delivery.complete()  # too late: the outcome is decided once
    assert received(client) == b""
    assert transport.written == b""
    assert not is_open(fd)


def _hold_copy_back(
    writer: SqliteBatchWriter, monkeypatch: pytest.MonkeyPatch
) -> tuple[threading.Event, threading.Event]:
    """Make the checkpoint's copy slow (a slow disk's sync): (copying, release)."""
    copying, release = threading.Event(), threading.Event()
    copy_back = writer._copy_back

    def slow_copy_back() -> int:
        frames = copy_back()
        copying.set()
        release.wait(5)
        return frames

    monkeypatch.setattr(writer, "_copy_back", slow_copy_back)
    return copying, release


async def _log_frames(writer: SqliteBatchWriter) -> int:
    """The write-ahead log's length in frames, read on the checkpoint thread's connection
    (it has the log open; a new connection may not, and reads -1)."""
    _busy, frames, _copied = await asyncio.get_running_loop().run_in_executor(
        writer._checkpointer,
        lambda: (
            writer._checkpoint_connection().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        ),
    )
    return int(frames)


async def test_the_inline_writer_leaves_checkpoints_to_the_thread(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The event loop never checkpoints the write-ahead log (that syncs the file); a thread
    of its own does, every so many inline batches, so the log does not grow forever.  A log
    copied back whole starts over at the next commit, which writes and syncs its header:
    that one commit goes to the writer thread."""
    writer = database.settlements.batch_writer
    if not isinstance(writer, SqliteBatchWriter):
        pytest.skip("SQLite only")
    monkeypatch.setattr(writer, "CHECKPOINT_EVERY", 5)
    account = await new_account(database, balance=100_000)
    inline, threaded = writer.inline_batches, writer.thread_batches
    for i in range(30):
        await database.settlements.charge(charge(f"req_c{i}_{account}", account, 10))
        await asyncio.sleep(0.005)
    await until(lambda: writer.checkpoints >= 2)
    inline, threaded = writer.inline_batches - inline, writer.thread_batches - threaded
    # A short log is only copied back, beside the commits: none waited for a checkpoint,
    # and at most one per checkpoint (the log's first) left the loop.
    assert inline + threaded == 30
    assert 1 <= threaded <= writer.checkpoints
    assert writer.checkpoints >= 2


async def test_commits_stay_inline_while_the_log_is_copied_back(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The long part of a checkpoint (copying the log into the database file and syncing
    it) runs beside the inline commits; only the short restart after it holds them back.
    (Holding every commit behind the whole checkpoint put ~27 ms on the p99 at 200 req/s.)"""
    writer = database.settlements.batch_writer
    if not isinstance(writer, SqliteBatchWriter):
        pytest.skip("SQLite only")
    monkeypatch.setattr(writer, "CHECKPOINT_EVERY", 3)
    monkeypatch.setattr(writer, "RESTART_FRAMES", 1)  # every checkpoint starts the log over
    copying, release = _hold_copy_back(writer, monkeypatch)
    account = await new_account(database, balance=100_000)
    for i in range(3):
        await database.settlements.charge(charge(f"req_a{i}_{account}", account, 10))
    assert await until(copying.is_set)
    inline, threaded = writer.inline_batches, writer.thread_batches
    for i in range(10):
        await database.settlements.charge(charge(f"req_b{i}_{account}", account, 10))
    assert (writer.inline_batches - inline, writer.thread_batches - threaded) == (10, 0)
    checkpoints = writer.checkpoints
    release.set()
    await until(lambda: writer.checkpoints > checkpoints)
    assert writer.checkpoints == checkpoints + 1
    # The restart left an empty log: the next commit writes at its start.
    await database.settlements.charge(charge(f"req_c_{account}", account, 10))
    assert 0 < await _log_frames(writer) < 20


async def test_batches_wait_on_the_loop_while_the_log_restarts(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the log starts over, batches are held on the event loop, not sent to the writer
    thread to race the restart for the lock; they go the moment it ends, and the first batch
    (which writes the fresh log's header and syncs it) from the thread."""
    writer = database.settlements.batch_writer
    if not isinstance(writer, SqliteBatchWriter):
        pytest.skip("SQLite only")
    monkeypatch.setattr(writer, "CHECKPOINT_EVERY", 3)
    monkeypatch.setattr(writer, "RESTART_FRAMES", 1)  # every checkpoint starts the log over
    restarting, release = threading.Event(), threading.Event()
    restart = writer._restart

    def slow_restart() -> None:
        restarting.set()
        release.wait(5)
        restart()

    monkeypatch.setattr(writer, "_restart", slow_restart)
    account = await new_account(database, balance=100_000)
    for i in range(3):
        await database.settlements.charge(charge(f"req_r{i}_{account}", account, 10))
    assert await until(restarting.is_set)
    inline, threaded = writer.inline_batches, writer.thread_batches
    held = [
        asyncio.ensure_future(
            database.settlements.charge(charge(f"req_s{i}_{account}", account, 10))
        )
        for i in range(5)
    ]
    await asyncio.sleep(0.05)
    assert not any(future.done() for future in held)
    assert (writer.inline_batches, writer.thread_batches) == (inline, threaded)
    release.set()
    versions = await asyncio.wait_for(asyncio.gather(*held), 5)
    assert len(set(versions)) == 5
    # together, in one batch: the fresh log's first commit, from the thread
    assert (writer.inline_batches - inline, writer.thread_batches - threaded) == (0, 1)
    assert 0 < await _log_frames(writer) < 30  # the log started over


async def test_the_stores_connections_leave_checkpoints_to_the_settlement_writer(
    database: Database,
) -> None:
    """A write through the engine (key usage, the dashboard) past SQLite's default of 1,000
    pages of log does not checkpoint the log in its commit, holding the database's lock
    while it copies and syncs: the settlement writer's checkpointer does that."""
    if not isinstance(database.settlements.batch_writer, SqliteBatchWriter):
        pytest.skip("SQLite only")
    async with database.engine.begin() as conn:
        await conn.execute(text("CREATE TABLE filler (data BLOB)"))
    for _ in range(12):  # 12 commits of ~100 pages each
        async with database.engine.begin() as conn:
            await conn.execute(text("INSERT INTO filler VALUES (randomblob(4000))"), [{}] * 100)
    async with database.engine.connect() as conn:
        wal = await conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        _busy, frames, _copied = wal.one()
    # checkpointed at 1,000 pages, the log would have started over: a few hundred frames
    assert frames > 1_000


async def test_thread_commits_go_on_while_the_log_is_copied_back(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With FULL every batch commits in the writer thread; the checkpoint has a thread and
    connection of its own, so those commits (and their answers) do not wait for it."""
    writer = database.settlements.batch_writer
    if not isinstance(writer, SqliteBatchWriter):
        pytest.skip("SQLite only")
    monkeypatch.setattr(writer, "_inline_ok", False)  # every batch in the thread, as FULL
    monkeypatch.setattr(writer, "CHECKPOINT_EVERY", 3)
    copying, release = _hold_copy_back(writer, monkeypatch)
    account = await new_account(database, balance=100_000)
    try:
        for i in range(3):
            await database.settlements.charge(charge(f"req_f{i}_{account}", account, 10))
        assert await until(copying.is_set)
        threaded = writer.thread_batches
        for i in range(10):
            await asyncio.wait_for(
                database.settlements.charge(charge(f"req_g{i}_{account}", account, 10)), 2
            )
        assert writer.thread_batches - threaded == 10
    finally:
        release.set()


async def test_a_failed_checkpoint_is_reported_and_the_next_one_runs(
    database: Database, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    writer = database.settlements.batch_writer
    if not isinstance(writer, SqliteBatchWriter):
        pytest.skip("SQLite only")
    monkeypatch.setattr(writer, "CHECKPOINT_EVERY", 2)
    opened = writer._checkpoint_connection
    failures = [sqlite3.OperationalError("disk I/O error")]

    def flaky() -> sqlite3.Connection:
        if failures:
            raise failures.pop()
        return opened()

    monkeypatch.setattr(writer, "_checkpoint_connection", flaky)
    account = await new_account(database, balance=100_000)
    for i in range(6):
        await database.settlements.charge(charge(f"req_h{i}_{account}", account, 10))
        await until(lambda: not writer._checkpointing)  # each done before the next batch
    assert writer.checkpoints == 3  # the failed one, then two that ran
    assert "WAL checkpoint failed: disk I/O error" in caplog.text


async def test_the_log_starts_over_under_a_steady_stream_of_commits(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checkpoints keep up with commits that never pause (saturation): the write-ahead log is
    restarted, not grown without bound."""
    writer = database.settlements.batch_writer
    if not isinstance(writer, SqliteBatchWriter):
        pytest.skip("SQLite only")
    monkeypatch.setattr(writer, "CHECKPOINT_EVERY", 20)
    monkeypatch.setattr(writer, "RESTART_FRAMES", 256)
    account = await new_account(database, balance=10_000_000)
    wal = f"{database.engine.url.database}-wal"

    async def stream(worker: int) -> None:
        for i in range(600):  # each charge awaited: one batch after another, no pause
            await database.settlements.charge(charge(f"req_w{worker}_{i}_{account}", account, 1))

    await asyncio.gather(*(stream(w) for w in range(8)))
    assert writer.checkpoints >= 1
    # 4,800 charges: ~40 MB of log if it were never restarted (measured with PASSIVE
    # checkpoints), a few MB when it starts over; 14.8 MB was seen once on a loaded CI run,
    # the restarts lagging behind the commits: still half of the unbounded case
    assert os.path.getsize(wal) < 20 * 1024 * 1024

"""Server-sent event streams with token pacing, the stall fault and stream counters."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import orjson
from aiohttp import web

from bastion.simulator.call import Call
from bastion.simulator.faults import wait_for_disconnect

DONE = b"data: [DONE]\n\n"
HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}
# Without pacing, events are coalesced into writes of about this size (fewer syscalls).
FLUSH_BYTES = 16 * 1024

# (encoded event, True if it is a token that waits for its slot in the pacing schedule)
Event = tuple[bytes, bool]


def data_event(payload: object) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def named_event(kind: str, payload: object) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


async def stream(call: Call, events: Iterable[Event]) -> web.StreamResponse:
    """Send `events` as an SSE response.

    Token k (from 0) goes out at first_token_ms + k / tokens_per_second after the headers;
    other events go out as soon as they are reached. With the stall fault, the stream
    sends stall_after_chunks events and then hangs until the client leaves.
    """
    options = call.options
    first = options.first_token_ms / 1000.0
    interval = 1.0 / options.tokens_per_second if options.tokens_per_second > 0 else 0.0
    paced = first > 0 or interval > 0
    stall_after = options.stall_after_chunks if call.stall else -1
    stats = call.control.stats

    response = web.StreamResponse(headers=HEADERS)
    try:
        await response.prepare(call.request)
    except ConnectionError:
        return response  # the client left before the headers: no stream was started
    stats.streams_started += 1
    loop = asyncio.get_running_loop()
    start = loop.time()
    pending: list[bytes] = []
    size = sent = ticks = 0
    try:
        for data, tick in events:
            if sent == stall_after:
                break
            if tick:
                if paced:
                    delay = start + first + ticks * interval - loop.time()
                    if delay > 0:
                        if pending:
                            await response.write(b"".join(pending))
                            pending.clear()
                            size = 0
                        await asyncio.sleep(delay)
                ticks += 1
            pending.append(data)
            size += len(data)
            sent += 1
            if size >= FLUSH_BYTES:
                await response.write(b"".join(pending))
                pending.clear()
                size = 0
        if pending:
            await response.write(b"".join(pending))
        if call.stall:
            # Reached the stall point, or the stream was shorter: never end it either way.
            await wait_for_disconnect(call.request)
            stats.streams_cancelled += 1
            return response
        await response.write_eof()
    except ConnectionError:
        stats.streams_cancelled += 1
        return response  # aiohttp sees the dead transport too and drops it quietly
    except asyncio.CancelledError:
        stats.streams_cancelled += 1
        raise
    stats.streams_completed += 1
    return response

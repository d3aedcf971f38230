"""Script calls of many requests sent to Redis together: one pipeline per event-loop step.

Each admission and each release is one Lua script call.  Sent one by one, every call pays
redis-py's fixed costs (a pooled connection checked out and back, a timeout context, command
wrappers, a wake-up per reply): measured at saturation, the two calls per request took over a
third of the gateway's core.  Here, calls made while a pipeline is in flight, or in the same
event-loop step, leave together in the next one (``EVALSHA`` each, no transaction: every
script is atomic by itself), so those costs are paid once per batch.  Nothing waits to be
batched: an idle batcher sends in the very next step.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError

from bastion.errors import StoreUnavailableError

MAX_BATCH = 256

_Call = tuple[AsyncScript, list[str], list[str | int], "asyncio.Future[Any]"]


class ScriptBatcher:
    def __init__(
        self, client: aioredis.Redis, translate: Callable[[], AbstractAsyncContextManager[None]]
    ) -> None:
        self._client = client
        self._translate = translate
        """An async context manager class turning driver errors into StoreUnavailableError."""
        self._queue: list[_Call] = []
        self._busy = False
        """A call or a pipeline is out: new calls queue for the next pipeline."""
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0

    async def call(self, script: AsyncScript, keys: list[str], args: list[str | int]) -> Any:
        """Run one script call; its reply, or StoreUnavailableError.  With nothing out, it
        leaves at once, alone (no hop through the batcher's task: the latency of a quiet
        gateway is that of a plain call); otherwise it joins the next pipeline."""
        if self._busy or self._queue:
            return await self.queue(script, keys, args)
        self._busy = True
        try:
            async with self._translate():
                return await script(keys=keys, args=args)
        finally:
            self._busy = False
            if self._queue:
                self._wakeup.set()

    def queue(
        self, script: AsyncScript, keys: list[str], args: list[str | int]
    ) -> asyncio.Future[Any]:
        """Queue one script call for the next pipeline; it is sent even if the caller stops
        waiting."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((script, keys, args, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="bastion-redis-batcher")
        self._wakeup.set()
        return future

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for *_, future in self._queue:
            if not future.done():
                future.set_exception(StoreUnavailableError("the gateway is shutting down"))
        self._queue.clear()

    async def _run(self) -> None:
        while True:
            if not self._queue or self._busy:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            self._busy = True
            try:
                replies = await self._send(batch)
            except Exception as exc:
                error = exc if isinstance(exc, StoreUnavailableError) else StoreUnavailableError()
                for *_, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            finally:
                self._busy = False
            self.batches += 1
            for (*_, future), reply in zip(batch, replies, strict=True):
                if future.done():
                    continue
                if isinstance(reply, RedisError):
                    future.set_exception(
                        StoreUnavailableError("The limiter store failed; retry shortly")
                    )
                else:
                    future.set_result(reply)

    async def _send(self, batch: list[_Call]) -> list[Any]:
        async with self._translate():
            replies = await self._pipeline(batch)
            # A script Redis does not know (first use, or Redis restarted): load it, resend.
            missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
            if missing:
                for script in {id(batch[i][0]): batch[i][0] for i in missing}.values():
                    await self._client.script_load(script.script)
                again = await self._pipeline([batch[i] for i in missing])
                for i, reply in zip(missing, again, strict=True):
                    replies[i] = reply
        return replies

    async def _pipeline(self, batch: list[_Call]) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)
        for script, keys, args, _ in batch:
            _ = pipe.evalsha(script.sha, len(keys), *keys, *args)  # queued, not sent
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies

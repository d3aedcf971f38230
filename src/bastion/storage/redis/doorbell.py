"""A doorbell over Redis pub/sub: whoever changes something (a revocation, a grant, a tier)
rings it after committing, and every replica polls the store's change feed at once.

The change feed in the store of record stays the single source of truth; the doorbell only
turns the poll interval into milliseconds.  A lost message costs at most one poll interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from bastion.storage.redis.admission import Translated

log = logging.getLogger("bastion.redis")

RELOAD = "reload"
POLL = "poll"


class RedisDoorbell:
    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._redis = client
        self.channel = prefix + "changes"

    async def ring(self, message: str = POLL) -> None:
        async with Translated():
            await self._redis.publish(self.channel, message)

    async def listen(self, on_message: Callable[[str], Awaitable[None]]) -> None:
        """Run until cancelled; reconnect after Redis outages."""
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        await on_message(str(message.get("data")))
            except asyncio.CancelledError:
                raise
            except Exception:  # any driver fault: wait, resubscribe; polling covers the gap
                log.warning("change doorbell disconnected; resubscribing")
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

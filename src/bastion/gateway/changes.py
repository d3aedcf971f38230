"""Follow the store's change feed: drop cached keys and balances that others changed.

Every writer (the CLI, the dashboard, another replica) records a change row in the same
transaction as the change.  Each gateway process polls the feed (every 0.25 s by default)
and, in the scaled-out topology, also on every ring of the Redis doorbell.  On PostgreSQL,
sequence numbers are handed out before commit, so a row may become visible after a higher
one: numbers skipped over are remembered for a few seconds and looked for again.
"""

from __future__ import annotations

import logging

from bastion.core.admission import AdmissionStore
from bastion.core.clock import Clock
from bastion.core.records import Change
from bastion.gateway.authenticate import Authenticator
from bastion.storage.sql.changes import SqlChangeFeed

log = logging.getLogger("bastion.changes")

GAP_PATIENCE_MS = 10_000


class ChangeFollower:
    def __init__(
        self,
        feed: SqlChangeFeed,
        authenticator: Authenticator,
        admission: AdmissionStore,
        clock: Clock,
    ) -> None:
        self._feed = feed
        self._authenticator = authenticator
        self._admission = admission
        self._clock = clock
        self._seq = 0
        self._gaps: dict[int, int] = {}

    async def start(self) -> None:
        self._seq = await self._feed.head()

    async def poll(self) -> int:
        """Apply every change not seen yet; returns how many were applied."""
        now = self._clock.now_ms()
        self._gaps = {
            seq: since for seq, since in self._gaps.items() if now - since < GAP_PATIENCE_MS
        }
        start = min(self._gaps, default=self._seq + 1) - 1
        applied = 0
        for change in await self._feed.since(start):
            if change.seq <= self._seq and change.seq not in self._gaps:
                continue
            self._gaps.pop(change.seq, None)
            for missing in range(self._seq + 1, change.seq):
                self._gaps[missing] = now
            self._seq = max(self._seq, change.seq)
            await self.apply(change)
            applied += 1
        return applied

    async def apply(self, change: Change) -> None:
        if change.kind == "key" and change.key_id:
            self._authenticator.drop_key(change.key_id)
        elif change.kind == "account" and change.account_id:
            self._authenticator.drop_account(change.account_id)
            await self._admission.forget_account(change.account_id)
        elif change.kind == "balance" and change.account_id:
            await self._admission.forget_account(change.account_id)

"""Settle a request: price its usage, make the charge durable, release its hold, log it.

Charges are written by request id, once: the ledger's unique ``(request_id, kind)`` makes a
repeated write a no-op.  A request that failed is never charged; its hold is released.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import orjson

from bastion.core.calendar import now_ms
from bastion.core.catalog import Model
from bastion.core.delivery import Delivery
from bastion.core.records import Charge, RequestLogEntry
from bastion.core.usage import Usage, price_usage
from bastion.gateway.admission import Ticket
from bastion.storage.sql.settlements import SqlSettlementWriter

log = logging.getLogger("bastion.settlement")


def usage_text(usage: Mapping[str, object]) -> str:
    """Usage (``Usage.as_dict()``) as the ledger and the usage history store it."""
    return orjson.dumps(usage).decode()


class Settler:
    def __init__(self, writer: SqlSettlementWriter) -> None:
        self._writer = writer

    def charge(
        self,
        ticket: Ticket,
        model: Model,
        endpoint: str,
        usage: Usage,
        usage_json: str,
        delivery: Delivery | None = None,
    ) -> tuple[int, asyncio.Future[int | None] | None]:
        """Start recording the charge for ``usage``: (cost, a future of the ledger version
        once it is durable) — no future for a free request.  The future raises
        StoreUnavailableError when the charge cannot be written: the caller must then fail
        the request rather than deliver it unbilled.  Bytes handed to ``delivery`` leave
        right after the commit.  ``usage_json`` is ``usage`` as written (:func:`usage_text`)."""
        cost = price_usage(usage, model.price)
        if cost <= 0:
            return 0, None
        return cost, self._writer.enqueue(
            Charge(
                request_id=ticket.request_id,
                account_id=ticket.principal.account.id,
                key_id=ticket.principal.key.id,
                amount=cost,
                model=model.id,
                endpoint=endpoint,
                usage=usage_json,
                created_ms=now_ms(),
            ),
            delivery,
        )

    def record(
        self,
        ticket: Ticket,
        *,
        model: str | None,
        endpoint: str,
        status: int,
        usage_json: str | None,
        cost: int,
        started_ms: int,
    ) -> None:
        """Add the request to the usage history (not awaited: it rides the next batch)."""
        now = now_ms()
        self._writer.log(
            RequestLogEntry(
                request_id=ticket.request_id,
                account_id=ticket.principal.account.id,
                key_id=ticket.principal.key.id,
                model=model,
                endpoint=endpoint,
                status=status,
                usage=usage_json,
                cost=cost,
                duration_ms=max(0, now - started_ms),
                created_ms=started_ms,
            )
        )

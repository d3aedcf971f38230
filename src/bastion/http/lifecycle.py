"""What every request of the public listener gets, whichever server parsed it (the API lane or
aiohttp): an id, the error envelope for every failure, its metrics and its one log line."""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from bastion.errors import BastionError
from bastion.gateway.sink import ClientGoneError, Exchange
from bastion.observability.logging import info_line
from bastion.runtime import Runtime

log = logging.getLogger("bastion.request")

R = TypeVar("R")

ENDPOINTS = {
    "/v1/models": "models",
    "/v1/chat/completions": "chat",
    "/v1/completions": "completions",
    "/v1/responses": "responses",
    "/v1/embeddings": "embeddings",
    "/v1/images/generations": "images",
    "/v1/audio/transcriptions": "transcriptions",
    "/api/v1/tts/text_to_audio": "tts",
    "/healthz": "health",
    "/readyz": "health",
    "/openapi.json": "openapi",
    "/openapi.yaml": "openapi",
}
"""Path → the ``endpoint`` of logs and metrics (a closed set: never a client's raw path)."""

_ID_PREFIX = "req_" + secrets.token_hex(6)
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    """Unique without a random draw (a syscall) per request: a random per-process prefix,
    then a counter.  Request ids are identifiers, not secrets."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER):012x}"


def endpoint_of(path: str) -> str:
    known = ENDPOINTS.get(path)
    if known is not None:
        return known
    return "dashboard" if path.startswith("/dashboard") else "other"


class Edge(Generic[R]):
    """How one server shows a request to the lifecycle: its own response type ``R``, a
    response's status, the error response, and the facts known only at the end."""

    __slots__ = ()

    def status(self, response: R) -> int:
        raise NotImplementedError

    def error(self, error: BastionError, exchange: Exchange) -> R:
        """The envelope of ``error`` with the exchange's headers (or, once a head was sent,
        whatever ends the answer)."""
        raise NotImplementedError

    def gone(self) -> R:
        """What the handler returns when the client left before its answer."""
        raise NotImplementedError

    def head_sent(self) -> float | None:
        """When the response head left (``time.perf_counter``), if it did."""
        raise NotImplementedError

    def timed_out(self) -> bool:
        """The request's body missed its deadline (the connection answered 408)."""
        raise NotImplementedError


async def run(
    runtime: Runtime,
    method: str,
    path: str,
    edge: Edge[R],
    handler: Callable[[Exchange], Awaitable[R]],
) -> R:
    """Serve one request with ``handler``: its id, the envelope for every failure, and its
    metrics and log line whatever happens."""
    exchange = Exchange(new_request_id())
    metrics = runtime.metrics
    metrics.active += 1
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(exchange)
        status = edge.status(response)
        return response
    except BastionError as error:
        status = error.status
        exchange.info["error"] = error.code
        if error.status >= 500 and error.__cause__ is not None:
            # the operator needs the cause; the client gets only the envelope
            exchange.info["cause"] = f"{type(error.__cause__).__name__}: {error.__cause__}"[:300]
        return edge.error(error, exchange)
    except ClientGoneError:
        status = 499
        return edge.gone()
    except asyncio.CancelledError:
        # the client left (or, on a drain past its deadline, the gateway cut the request);
        # a body that missed its deadline was answered 408 by the connection
        status = 408 if edge.timed_out() else 499
        raise
    except Exception:
        log.exception("unhandled error", extra={"request_id": exchange.request_id})
        status = 500
        exchange.info["error"] = "internal_error"
        internal = BastionError("Internal error; it was logged with this request's id.")
        return edge.error(internal, exchange)
    finally:
        metrics.active -= 1
        _record(runtime, exchange, method, path, status, started, edge.head_sent())


def _record(
    runtime: Runtime,
    exchange: Exchange,
    method: str,
    path: str,
    status: int,
    started: float,
    head: float | None,
) -> None:
    metrics = runtime.metrics
    ended = time.perf_counter()
    total_s = ended - started
    info = exchange.info
    endpoint = info.get("endpoint")
    if not isinstance(endpoint, str):
        endpoint = info["endpoint"] = endpoint_of(path)
    # a response not prepared yet (an error, a plain answer) leaves right after this
    ttfb_s = head - started if head is not None else None if status in (408, 499) else total_s
    upstream_ms = info.get("upstream_ms")
    upstream_s = upstream_ms / 1000 if isinstance(upstream_ms, float) else None
    model = info.get("model")
    admit_ms, commit_ms = info.get("admit_ms"), info.get("commit_ms")
    metrics.request_done(
        endpoint,
        model if isinstance(model, str) else "",
        status,
        total_s,
        ttfb_s,
        upstream_s,
        admit_ms / 1000 if isinstance(admit_ms, float) else None,
        commit_ms / 1000 if isinstance(commit_ms, float) else None,
    )
    code = info.get("error")
    if isinstance(code, str):
        metrics.error(status, code)
    if runtime.settings.log.access_log:
        if ttfb_s is not None:
            info["ttfb_ms"] = round(ttfb_s * 1000, 3)
        if upstream_s is not None:
            info["overhead_ms"] = round(max(0.0, total_s - upstream_s) * 1000, 3)
        info_line(
            log,
            "request",
            {
                "request_id": exchange.request_id,
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": round(total_s * 1000, 3),
                **info,
            },
        )

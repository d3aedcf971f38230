"""The public listener's aiohttp application: routes, the error envelope, request ids."""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from bastion.dashboard import app as dashboard
from bastion.errors import BastionError
from bastion.gateway.sink import ClientGoneError, Exchange
from bastion.http.envelope import error_response, from_http_exception
from bastion.http.keys import EXCHANGE, PREPARED, RUNTIME
from bastion.http.protocol import TIMED_OUT
from bastion.http.routes import audio, health, openai, openapi, tts
from bastion.http.transport import https_guard
from bastion.observability.logging import info_line
from bastion.runtime import Runtime

log = logging.getLogger("bastion.request")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

HEAD_SENT: web.RequestKey[float] = web.RequestKey("head_sent")
"""When the response head left (``time.perf_counter``): the time to first byte."""

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


@web.middleware
async def lifecycle(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, the error envelope for every failure, one log line and the metrics of
    every request."""
    exchange = Exchange(new_request_id())
    request[EXCHANGE] = exchange
    runtime: Runtime = request.app[RUNTIME]
    metrics = runtime.metrics
    metrics.active += 1
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except BastionError as error:
        status = error.status
        exchange.info["error"] = error.code
        if error.status >= 500 and error.__cause__ is not None:
            # the operator needs the cause; the client gets only the envelope
            exchange.info["cause"] = f"{type(error.__cause__).__name__}: {error.__cause__}"[:300]
        return _error(request, exchange, error)
    except web.HTTPException as exc:
        mapped = from_http_exception(exc, request.path)
        status = mapped.status
        exchange.info["error"] = mapped.code
        return _error(request, exchange, mapped)
    except ClientGoneError:
        status = 499
        return web.Response(status=499)
    except asyncio.CancelledError:
        # the client left (or, on a drain past its deadline, the gateway cut the request);
        # a body that missed its deadline was answered 408 by the connection
        status = 408 if TIMED_OUT in request else 499
        raise
    except Exception:
        log.exception("unhandled error", extra={"request_id": exchange.request_id})
        status = 500
        exchange.info["error"] = "internal_error"
        return _error(
            request, exchange, BastionError("Internal error; it was logged with this request's id.")
        )
    finally:
        metrics.active -= 1
        ended = time.perf_counter()
        total_s = ended - started
        info = exchange.info
        endpoint = info.get("endpoint")
        if not isinstance(endpoint, str):
            endpoint = info["endpoint"] = endpoint_of(request.path)
        head = request.get(HEAD_SENT)
        # a response not prepared yet (an error, a plain answer) leaves right after this
        ttfb_s = head - started if head is not None else None if status in (408, 499) else total_s
        upstream_ms = info.get("upstream_ms")
        upstream_s = upstream_ms / 1000 if isinstance(upstream_ms, float) else None
        model = info.get("model")
        metrics.request_done(
            endpoint, model if isinstance(model, str) else "", status, total_s, ttfb_s, upstream_s
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
                    "method": request.method,
                    "path": request.path,
                    "status": status,
                    "duration_ms": round(total_s * 1000, 3),
                    **info,
                },
            )


def _error(request: web.Request, exchange: Exchange, error: BastionError) -> web.StreamResponse:
    if PREPARED in request:
        return request[PREPARED]  # the head is already sent: nothing more can be said
    return error_response(error, exchange.headers)


async def _add_request_id(request: web.Request, response: web.StreamResponse) -> None:
    exchange = request.get(EXCHANGE)
    if exchange is not None:
        response.headers["x-request-id"] = exchange.request_id
        request[PREPARED] = response
        request[HEAD_SENT] = time.perf_counter()


def create_app(runtime: Runtime) -> web.Application:
    settings = runtime.settings
    middlewares: list[Middleware] = [lifecycle]
    guard = https_guard(settings.listener)
    if guard is not None:
        middlewares.insert(0, guard)
    app = web.Application(
        middlewares=middlewares,
        client_max_size=settings.listener.max_json_body_bytes,
    )
    app[RUNTIME] = runtime
    app.on_response_prepare.append(_add_request_id)
    openai.add_routes(app)
    audio.add_routes(app)
    tts.add_routes(app)
    health.add_routes(app)
    openapi.add_routes(app)
    dashboard.mount(app, runtime)
    return app

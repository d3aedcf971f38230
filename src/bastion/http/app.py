"""The public listener's aiohttp application: routes, the error envelope, request ids."""

from __future__ import annotations

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
from bastion.http.routes import audio, health, openai, tts
from bastion.http.transport import https_guard
from bastion.runtime import Runtime

log = logging.getLogger("bastion.request")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def new_request_id() -> str:
    return "req_" + secrets.token_hex(12)


@web.middleware
async def lifecycle(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, the error envelope for every failure, and one log line per request."""
    exchange = Exchange(new_request_id())
    request[EXCHANGE] = exchange
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
        return _error(request, exchange, mapped)
    except ClientGoneError:
        status = 499
        return web.Response(status=499)
    except Exception:
        log.exception("unhandled error", extra={"request_id": exchange.request_id})
        status = 500
        return _error(
            request, exchange, BastionError("Internal error; it was logged with this request's id.")
        )
    finally:
        runtime: Runtime = request.app[RUNTIME]
        if runtime.settings.log.access_log:
            log.info(
                "request",
                extra={
                    "request_id": exchange.request_id,
                    "method": request.method,
                    "path": request.path,
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                    **exchange.info,
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
    dashboard.mount(app, runtime)
    return app

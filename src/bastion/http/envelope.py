"""Every error as the contract's JSON envelope, with its status and headers."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from aiohttp import web

from bastion.errors import BastionError, MethodNotAllowedError, NotFoundError, RequestTooLargeError


def error_response(error: BastionError, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        status=error.status,
        body=orjson.dumps(error.envelope()),
        content_type="application/json",
        headers={**(headers or {}), **error.headers()},
    )


def from_http_exception(exc: web.HTTPException, path: str) -> BastionError:
    """aiohttp's own 404/405/413 become the contract's errors."""
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return MethodNotAllowedError(
            f"Method {exc.method} is not allowed on {path}; "
            f"use {', '.join(sorted(exc.allowed_methods))}.",
            allowed=tuple(sorted(exc.allowed_methods)),
        )
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return RequestTooLargeError("The request body is larger than this endpoint accepts.")
    if isinstance(exc, web.HTTPNotFound):
        return NotFoundError(f"Unknown path {path[:200]}.")
    error = BastionError(exc.reason or "Error")
    error.status = exc.status  # type: ignore[misc]
    return error

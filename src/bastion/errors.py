"""The one error tree of Bastion.

Every error a client can see is a :class:`BastionError`; its class fixes the HTTP status, the
``code`` and ``type`` of the JSON envelope and the log level, so that the edge renders any of
them with one lookup::

    BastionError
    ├── ClientError                      4xx: the caller can fix it, never retried
    │   ├── InvalidRequestError          400 invalid_request
    │   ├── ModelNotFoundError           400 model_not_found
    │   ├── InvalidApiKeyError           401 invalid_api_key
    │   ├── PaymentRequiredError         402 (insufficient_quota)
    │   │   ├── InsufficientFundsError   402 insufficient_funds
    │   │   └── SpendCapExceededError    402 spend_cap_exceeded
    │   ├── NotFoundError                404 not_found
    │   ├── MethodNotAllowedError        405 method_not_allowed
    │   ├── RequestTooLargeError         413 request_entity_too_large
    │   └── RateLimitedError             429 rate_limit_exceeded (carries retry_after_s)
    └── ServerError                      5xx: transient, the caller may retry
        ├── UpstreamError                502 upstream_error
        └── ServiceUnavailableError      503 service_unavailable
            └── StoreUnavailableError    503, raised by storage adapters for any driver fault

Errors carry data; the client-facing message is built here and never includes upstream
bodies or key material.  Operator-side failures that never reach a client (a bad config file,
a CLI misuse) use :class:`ConfigError` and :class:`OperatorError`, which are not HTTP errors.
"""

from __future__ import annotations

import logging
from typing import ClassVar


class BastionError(Exception):
    """Root of every client-visible error."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    type: ClassVar[str] = "api_error"
    log_level: ClassVar[int] = logging.ERROR
    default_message: ClassVar[str] = "Internal error"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        self.extra_headers: dict[str, str] = {}
        super().__init__(self.message)

    def headers(self) -> dict[str, str]:
        """Response headers this error needs (e.g. ``Retry-After``, rate-limit state)."""
        return self.extra_headers

    def envelope(self) -> dict[str, dict[str, str | None]]:
        return {"error": {"message": self.message, "type": self.type, "code": self.code}}


class ClientError(BastionError):
    status = 400
    type = "invalid_request_error"
    log_level = logging.INFO


class InvalidRequestError(ClientError):
    code = "invalid_request"
    default_message = "Invalid request"


class ModelNotFoundError(ClientError):
    code = "model_not_found"
    default_message = "Model not found"


class InvalidApiKeyError(ClientError):
    status = 401
    code = "invalid_api_key"
    default_message = "Invalid API key"


class PaymentRequiredError(ClientError):
    status = 402
    type = "insufficient_quota"


class InsufficientFundsError(PaymentRequiredError):
    code = "insufficient_funds"
    default_message = "Insufficient credit"


class SpendCapExceededError(PaymentRequiredError):
    code = "spend_cap_exceeded"
    default_message = "This key's monthly spend cap is reached"


class NotFoundError(ClientError):
    status = 404
    code = "not_found"
    default_message = "Not found"


class MethodNotAllowedError(ClientError):
    status = 405
    code = "method_not_allowed"
    default_message = "Method not allowed"

    def __init__(self, message: str | None = None, allowed: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.allowed = allowed

    def headers(self) -> dict[str, str]:
        allow = {"Allow": ", ".join(self.allowed)} if self.allowed else {}
        return {**self.extra_headers, **allow}


class RequestTooLargeError(ClientError):
    status = 413
    code = "request_entity_too_large"
    default_message = "Request body too large"


class RateLimitedError(ClientError):
    status = 429
    code = "rate_limit_exceeded"
    type = "rate_limit_error"
    default_message = "Rate limit exceeded"

    def __init__(self, message: str | None = None, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = max(1, int(retry_after_s))

    def headers(self) -> dict[str, str]:
        return {**self.extra_headers, "Retry-After": str(self.retry_after_s)}


class ServerError(BastionError):
    type = "api_error"
    log_level = logging.WARNING


class UpstreamError(ServerError):
    status = 502
    code = "upstream_error"
    default_message = "The upstream model server failed to answer"


class ServiceUnavailableError(ServerError):
    status = 503
    code = "service_unavailable"
    default_message = "Service temporarily unavailable, retry shortly"

    def headers(self) -> dict[str, str]:
        return {**self.extra_headers, "Retry-After": "1"}


class StoreUnavailableError(ServiceUnavailableError):
    """A storage backend (database, Redis) could not be consulted in time.

    Storage adapters translate every driver exception into this one class, so code above
    ``bastion.storage`` never imports a driver exception.
    """

    default_message = "The limiter or balance store is unavailable, retry shortly"


class ConfigError(Exception):
    """The configuration file is invalid; the message names the file and the key."""


class OperatorError(Exception):
    """An operator command cannot be carried out (unknown account, bad amount, ...)."""


def all_client_visible() -> list[type[BastionError]]:
    """Every concrete error class with its own code, for the docs table test."""
    seen: list[type[BastionError]] = []
    stack: list[type[BastionError]] = [BastionError]
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls.code not in {c.code for c in seen} and cls not in (
            BastionError,
            ClientError,
            ServerError,
            PaymentRequiredError,
        ):
            seen.append(cls)
    return sorted(seen, key=lambda c: (c.status, c.code))

"""Schemathesis hooks for ``tests/ops/test_schemathesis.py`` (loaded via SCHEMATHESIS_HOOKS).

``no_internal_error`` replaces the stock ``not_a_server_error``: a 502 (an upstream refused a
passed-through member, e.g. ``n`` above what the model server allows) and a 503 are
documented answers of a gateway, never bugs; a 500 always is.  It also holds every error, on
every status, to the JSON envelope, documented or not.
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis

ENVELOPE_TYPES = {"invalid_request_error", "insufficient_quota", "rate_limit_error", "api_error"}


@schemathesis.check
def no_internal_error(ctx: Any, response: Any, case: Any) -> bool | None:
    if response.status_code == 500:
        raise AssertionError(f"500 Internal Server Error: {response.text[:500]}")
    if response.status_code >= 400:
        try:
            body = json.loads(response.content)
        except ValueError:
            raise AssertionError(
                f"{response.status_code} without the JSON error envelope: {response.text[:200]}"
            ) from None
        error = body.get("error") if isinstance(body, dict) else None
        if (
            not isinstance(error, dict)
            or set(body) != {"error"}
            or set(error) != {"message", "type", "code"}
            or error["type"] not in ENVELOPE_TYPES
            or not all(isinstance(error[k], str) and error[k] for k in error)
        ):
            raise AssertionError(f"{response.status_code} with a malformed envelope: {body}")
        if "x-request-id" not in {k.lower() for k in response.headers}:
            raise AssertionError(f"{response.status_code} without x-request-id")
    return None

"""The error tree and its documentation agree: every client-visible code is in docs/errors.md
with its status and type, and every class renders the contract's envelope."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bastion import errors

DOC = Path(__file__).resolve().parents[2] / "docs" / "errors.md"


def documented_rows() -> dict[str, tuple[int, str]]:
    rows = {}
    for line in DOC.read_text().splitlines():
        match = re.match(r"\|\s*(\d{3})\s*\|\s*`([a-z_]+)`\s*\|\s*`([a-z_]+)`\s*\|", line)
        if match:
            rows[match.group(2)] = (int(match.group(1)), match.group(3))
    return rows


@pytest.mark.parametrize("cls", errors.all_client_visible(), ids=lambda c: c.code)
def test_every_client_visible_error_is_documented(cls: type[errors.BastionError]) -> None:
    rows = documented_rows()
    assert cls.code in rows, f"{cls.code} is missing from docs/errors.md"
    assert rows[cls.code] == (cls.status, cls.type)


def test_the_contract_table_is_covered() -> None:
    codes = {cls.code for cls in errors.all_client_visible()}
    assert codes == {
        "invalid_request",
        "model_not_found",
        "invalid_api_key",
        "insufficient_funds",
        "spend_cap_exceeded",
        "not_found",
        "method_not_allowed",
        "request_entity_too_large",
        "rate_limit_exceeded",
        "upstream_error",
        "service_unavailable",
    }


@pytest.mark.parametrize("cls", errors.all_client_visible(), ids=lambda c: c.code)
def test_the_envelope(cls: type[errors.BastionError]) -> None:
    error = cls("something")
    assert error.envelope() == {
        "error": {"message": "something", "type": cls.type, "code": cls.code}
    }
    assert cls().message  # a default message for every class


def test_retryable_classes_are_5xx_and_429_only() -> None:
    for cls in errors.all_client_visible():
        retryable = issubclass(cls, errors.ServerError) or cls is errors.RateLimitedError
        assert retryable == (cls.status >= 500 or cls.status == 429)


def test_retry_after_is_a_whole_number_of_seconds() -> None:
    assert errors.RateLimitedError(retry_after_s=0).headers()["Retry-After"] == "1"
    assert errors.RateLimitedError(retry_after_s=7).headers()["Retry-After"] == "7"
    assert errors.ServiceUnavailableError().headers()["Retry-After"] == "1"
    allowed = errors.MethodNotAllowedError(allowed=("GET", "HEAD"))
    assert allowed.headers()["Allow"] == "GET, HEAD"

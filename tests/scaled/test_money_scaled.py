"""The money-path suites, run again on PostgreSQL + Redis (same tests, other topology)."""

from __future__ import annotations

from tests.money.test_billing_rules import *  # noqa: F403
from tests.money.test_concurrent_spend import (
    test_two_hundred_concurrent_requests_never_spend_more_than_the_balance,
)

__all__ = ["test_two_hundred_concurrent_requests_never_spend_more_than_the_balance"]

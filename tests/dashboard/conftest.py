"""Fixtures for the dashboard: a stack with the dashboard on, a browser stand-in, the console
SMS provider's codes, and operator accounts."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from bastion.admin.passwords import hash_password
from bastion.core.records import AccountRecord
from tests.dashboard.support import PASSWORD, SMS_LOGGER, Browserless, SmsInbox
from tests.support.harness import Stack


@pytest.fixture
def config() -> dict[str, Any]:
    return {"dashboard": {"secret": "test-dashboard-secret-0123456789abcdef"}}


@pytest.fixture
def inbox() -> Iterator[SmsInbox]:
    handler = SmsInbox()
    logger = logging.getLogger(SMS_LOGGER)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture
async def dash(stack: Stack) -> AsyncIterator[Browserless]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        yield Browserless(stack.url, http)


@pytest.fixture
async def other(stack: Stack) -> AsyncIterator[Browserless]:
    """A second, independent browser."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        yield Browserless(stack.url, http)


async def make_operator(
    stack: Stack, email: str = "ops@example.com", password: str = PASSWORD
) -> AccountRecord:
    account = await stack.runtime.accounts.create(
        email=email, phone="+14155550100", tier="pro", actor="test", role="operator"
    )
    await stack.runtime.dashboard.credentials.set_password(
        account.id, await hash_password(password), actor="test"
    )
    return account


async def customer_with_password(
    stack: Stack, email: str, password: str = PASSWORD, usd: str = "10"
) -> AccountRecord:
    account = await stack.account(usd, email=email)
    await stack.runtime.dashboard.credentials.set_password(
        account.id, await hash_password(password), actor="test"
    )
    return account

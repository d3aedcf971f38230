"""Low-balance alerts: set in the dashboard, sent once per crossing by the runtime's
background task, by email (a local SMTP server) and signed webhook (a local receiver)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.dashboard.conftest import customer_with_password
from tests.dashboard.receivers import Hooks, Mailbox, start_app, start_smtp, webhook_app
from tests.dashboard.support import Browserless, sign_in
from tests.support.harness import Stack

SECRET = "whsec-test-0123456789abcdef"


@pytest.fixture
async def smtp() -> AsyncIterator[tuple[int, Mailbox]]:
    server, port, mailbox = await start_smtp()
    yield port, mailbox
    server.close()
    await server.wait_closed()


@pytest.fixture
async def hooks() -> AsyncIterator[tuple[str, Hooks]]:
    received = Hooks(SECRET)
    runner, url = await start_app(webhook_app(received))
    yield url + "/hook", received
    await runner.cleanup()


@pytest.fixture
def config(smtp: tuple[int, Mailbox], hooks: tuple[str, Hooks]) -> dict[str, Any]:
    return {
        "dashboard": {"secret": "test-dashboard-secret-0123456789abcdef"},
        "alerts": {
            "enabled": True,
            "interval_s": 0.05,
            "email": {
                "smtp_host": "127.0.0.1",
                "smtp_port": smtp[0],
                "security": "none",
                "from_address": "billing@bastion.test",
            },
            "webhook": {"url": hooks[0], "secret": SECRET},
        },
    }


async def _until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    for _ in range(int(timeout_s / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


async def test_one_alert_per_crossing(
    stack: Stack,
    dash: Browserless,
    smtp: tuple[int, Mailbox],
    hooks: tuple[str, Hooks],
) -> None:
    _, mailbox = smtp
    _, received = hooks
    account = await customer_with_password(stack, "a@example.com", usd="10")
    await sign_in(dash, "a@example.com")
    page = await dash.get("/dashboard/alerts")
    assert page.has("by email to a@example.com")
    assert page.has("webhook")
    for bad in ("five", "-1", "0"):
        page = await dash.post("/dashboard/alerts", {"threshold": bad})
        assert page.status == 400, bad
        assert page.errors, bad
    assert (await stack.runtime.db.accounts.get(account.id)).low_balance_threshold is None  # type: ignore[union-attr]
    page = await dash.post("/dashboard/alerts", {"threshold": "5"})
    assert page.has("Your low-balance alert is saved")
    assert page.has("$5.00")
    await asyncio.sleep(0.3)
    assert mailbox.messages == []
    assert received.received == []
    credits = stack.runtime.credits
    await credits.adjust(account.id, -6_000_000, actor="test", reason="spent")
    await _until(lambda: len(mailbox.messages) == 1 and len(received.received) == 1)
    message = mailbox.messages[0]
    assert mailbox.recipients[0] == ["a@example.com"]
    assert "below $5.000000" in message["Subject"]
    assert "$4.000000" in message.get_payload()
    event = received.received[0]
    assert event["type"] == "balance.low"
    assert event["account_id"] == account.id
    assert event["balance_micros"] == 4_000_000
    assert event["threshold_micros"] == 5_000_000
    assert received.refused_signatures == 0
    await asyncio.sleep(0.3)
    assert len(mailbox.messages) == 1
    assert len(received.received) == 1
    await credits.grant(account.id, 10_000_000, actor="test", reason="top-up")  # back above
    store = stack.runtime.dashboard._alert_store
    for _ in range(250):  # re-armed by the task's next round
        if await store.state(account.id) is None:
            break
        await asyncio.sleep(0.02)
    await credits.adjust(account.id, -12_000_000, actor="test", reason="spent again")
    await _until(lambda: len(mailbox.messages) == 2 and len(received.received) == 2)
    for _ in range(250):  # the receiver answered; the task records "sent" just after
        state = await store.state(account.id)
        if state is not None and state["state"] == "sent":
            break
        await asyncio.sleep(0.02)
    assert state is not None
    assert state["state"] == "sent"
    assert state["channels"] == "email,webhook"


async def test_a_failed_delivery_is_retried(
    stack: Stack, smtp: tuple[int, Mailbox], hooks: tuple[str, Hooks]
) -> None:
    _, mailbox = smtp
    _, received = hooks
    received.fail_next = 2
    account = await stack.account(usd="1", email="b@example.com")
    await stack.runtime.dashboard.alerts.set_threshold(account.id, 2_000_000, actor="test")
    await _until(lambda: len(received.received) == 1)
    assert received.fail_next == 0  # two refusals, then delivered
    assert len(mailbox.messages) == 1  # the email went once: only the failed channel is retried


async def test_suspended_accounts_and_no_threshold_are_not_alerted(
    stack: Stack, smtp: tuple[int, Mailbox], hooks: tuple[str, Hooks]
) -> None:
    _, mailbox = smtp
    quiet = await stack.account(usd="1", email="quiet@example.com")
    suspended = await stack.account(usd="1", email="suspended@example.com")
    await stack.runtime.accounts.set_status(suspended.id, "suspended", actor="test")
    await stack.runtime.dashboard.alerts.set_threshold(suspended.id, 2_000_000, actor="test")
    await asyncio.sleep(0.4)
    assert mailbox.messages == []
    assert quiet.id


def test_a_signature_is_checked() -> None:
    from bastion.notify.webhook import sign, verify

    body = b'{"type":"balance.low"}'
    header = sign(SECRET, 1_700_000_000, body)
    assert verify(SECRET, header, body, now_s=1_700_000_010)
    assert not verify(SECRET, header, body + b" ", now_s=1_700_000_010)
    assert not verify("another-secret-entirely", header, body, now_s=1_700_000_010)
    assert not verify(SECRET, header, body, now_s=1_700_000_000 + 3600)  # a replay

"""The audit log: every operator and security path records an event, and ``bastion audit``
finds them by account, key, action, actor and time."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import orjson
import pytest
from click.testing import CliRunner, Result

from bastion.admin.passwords import hash_password
from bastion.cli.audit import parse_when
from bastion.cli.main import cli
from tests.dashboard.support import Browserless
from tests.support.harness import EXAMPLE, Stack
from tests.support.ports import free_port

PASSWORD = "a long operator passphrase"


@pytest.fixture
def config() -> dict[str, Any]:
    return {
        "listener": {"plain_http_port": free_port()},
        "dashboard": {"secret": "audit-test-dashboard-secret-0123456789"},
    }


class Cli:
    """``bastion`` run in a worker thread (it runs its own event loop) on the stack's data."""

    def __init__(self, stack: Stack) -> None:
        self.data_dir = str(stack.runtime.settings.data_dir)
        env = {name: None for name in os.environ if name.startswith("BASTION_")}
        env["BASTION_SIMULATOR_URL"] = stack.simulator_url
        self.runner = CliRunner(env=env)  # type: ignore[arg-type]

    async def __call__(self, *args: str) -> Result:
        return await asyncio.to_thread(
            self.runner.invoke, cli, ["--config", str(EXAMPLE), "--data-dir", self.data_dir, *args]
        )

    async def json(self, *args: str) -> Any:
        result = await self("--json", *args)
        assert result.exit_code == 0, (result.output, result.exception)
        return orjson.loads(result.stdout)


async def test_operator_and_security_events_are_audited_and_queryable(stack: Stack) -> None:
    bastion = Cli(stack)
    account = (
        await bastion.json(
            "accounts",
            "create",
            "--email",
            "a@example.com",
            "--phone",
            "+14155550123",
            "--tier",
            "free",
        )
    )["id"]
    other = (
        await bastion.json(
            "accounts", "create", "--email", "b@example.com", "--phone", "+14155550124"
        )
    )["id"]
    await bastion.json("credits", "grant", account, "5", "--reason", "welcome")
    await bastion.json("credits", "adjust", account, "--reason", "correction", "--", "-1")
    await bastion.json("accounts", "set-tier", account, "pro")
    await bastion.json("accounts", "suspend", account)
    await bastion.json("accounts", "resume", account)
    kept = (await bastion.json("keys", "create", account, "--label", "kept"))["id"]
    revoked = (await bastion.json("keys", "create", account, "--label", "old"))["id"]
    await bastion.json("keys", "limits", kept, "--rpm", "10")
    await bastion.json("keys", "revoke", revoked, "--reason", "rotated")

    # a key sent over plain HTTP is revoked by the plain-HTTP listener
    exposed_secret = await stack.key(other, "exposed")
    host, port = stack.server.bound[1]
    async with stack.http.get(
        f"http://{host}:{port}/v1/models",
        headers={"Authorization": f"Bearer {exposed_secret}"},
        allow_redirects=False,
    ) as response:
        assert response.status == 308

    # dashboard sign-ins, good and bad
    await stack.runtime.dashboard.credentials.set_password(
        account, await hash_password(PASSWORD), actor="test"
    )
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        browser = Browserless(stack.url, http)
        await browser.get("/dashboard/signin")
        await browser.post("/dashboard/signin", {"email": "a@example.com", "password": "wrong!"})
        await browser.get("/dashboard/signin")
        await browser.post("/dashboard/signin", {"email": "a@example.com", "password": PASSWORD})

    everything = await bastion.json("audit", "--limit", "1000")
    actions = {event["action"] for event in everything}
    assert actions >= {
        "account.create",
        "credit.grant",
        "credit.adjust",
        "account.tier",
        "account.suspend",
        "account.resume",
        "key.create",
        "key.limits",
        "key.revoke",
        "key.exposed",
        "account.password",
        "signin.failed",
        "signin",
    }
    for event in everything:
        assert event["at"].endswith("Z")
        assert "PASSWORD" not in orjson.dumps(event).decode()
        assert PASSWORD not in orjson.dumps(event).decode()
        assert exposed_secret not in orjson.dumps(event).decode()

    by_key = await bastion.json("audit", "--key", revoked)
    assert [e["action"] for e in by_key] == ["key.revoke", "key.create"]
    assert by_key[0]["details"]["reason"] == "rotated"

    keys = await bastion.json("audit", "--action", "key.*", "--account", account)
    assert sorted(e["action"] for e in keys) == [
        "key.create",
        "key.create",
        "key.limits",
        "key.revoke",
    ]
    exposure = await bastion.json("audit", "--actor", "plain-http-listener")
    assert sorted(e["action"] for e in exposure) == ["key.exposed", "key.revoke"]
    assert {e["account_id"] for e in exposure} == {other}
    sign_ins = await bastion.json("audit", "--action", "signin*", "--account", account)
    assert [e["action"] for e in sign_ins] == ["signin", "signin.failed"]
    assert (await bastion.json("audit", "--actor", "account:*"))[0]["action"] == "signin"

    assert len(await bastion.json("audit", "--since", "1h", "--limit", "1000")) == len(everything)
    future = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert await bastion.json("audit", "--since", future) == []
    assert await bastion.json("audit", "--until", "2000-01-01") == []
    first = min(e["created_ms"] for e in everything)
    until_first = datetime.fromtimestamp(first / 1000, UTC).isoformat()
    assert await bastion.json("audit", "--until", until_first) == []
    assert len(await bastion.json("audit", "--limit", "3")) == 3

    text = await bastion("audit", "--key", revoked)
    assert text.exit_code == 0
    assert "key.revoke" in text.stdout
    assert "key.create" in text.stdout
    bad = await bastion("audit", "--since", "yesterday-ish")
    assert bad.exit_code == 1
    assert "is not a time" in bad.output


def test_parse_when() -> None:
    now = 1_800_000_000_000
    assert parse_when("30m", now) == now - 30 * 60_000
    assert parse_when("2h", now) == now - 2 * 3_600_000
    assert parse_when("7d", now) == now - 7 * 86_400_000
    assert parse_when("1w", now) == now - 604_800_000
    assert parse_when("2026-11-26", now) == 1_795_651_200_000
    assert parse_when("2026-11-26T01:00:00+01:00", now) == 1_795_651_200_000
    assert parse_when("2026-11-26T00:00:00Z", now) == 1_795_651_200_000
    with pytest.raises(ValueError, match="is not a time"):
        parse_when("soon", now)

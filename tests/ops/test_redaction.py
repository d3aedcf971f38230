"""No secret in any log: a real ``bastion serve`` at DEBUG, fed API keys (valid, malformed,
unknown, revoked, exposed over plain HTTP), foreign bearer tokens, Basic credentials,
dashboard passwords and one-time codes, an admin token and an upstream credential, through
every path — the API, streams, errors, upstream failures, malformed HTTP, the plain-HTTP
listener, the admin listener, the dashboard's sign-up, verification, sign-in and key pages,
and the CLI.  Then every byte the gateway wrote (stdout and stderr), the CLI's output, the
metrics and the audit log are searched for every secret."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner

from bastion.cli.main import cli
from bastion.core import keys
from bastion.simulator import SimulatorOptions
from tests.dashboard.support import Browserless
from tests.ops.conftest import announced
from tests.support.harness import start_simulator
from tests.support.ports import free_port
from tests.support.processes import EXAMPLE, Processes

pytestmark = [pytest.mark.e2e]

UPSTREAM_KEY = "upstream-operator-credential-7f3a9c"
ADMIN_TOKEN = "admin-token-4b8e1d2c9a7f6e5d"
DASHBOARD_SECRET = "dashboard-secret-0f1e2d3c4b5a69788796a5b4"
PASSWORD = "correct horse battery staple 42"
WRONG_PASSWORD = "incorrect horse battery staple 43"
FOREIGN_TOKEN = "sk-live-9d8c7b6a5f4e3d2c1b0a"
BASIC_PASSWORD = "basic-auth-password-31337"
PHONE = "+14155550142"
BASIC_B64 = base64.b64encode(f"user:{BASIC_PASSWORD}".encode()).decode()
CODE = re.compile(r"verification code for \+\d+: (\d{6})")


@pytest.fixture
async def simulator() -> AsyncIterator[str]:
    runner, url = await start_simulator(
        SimulatorOptions(tokens_per_second=0, first_token_ms=0, api_key=UPSTREAM_KEY)
    )
    yield url
    await runner.cleanup()


def _otp(log: str, phone: str) -> str:
    codes = [m[1] for m in CODE.finditer(log) if phone in m[0]]
    assert codes, "no code was sent"
    return codes[-1]


async def test_no_secret_reaches_any_output(tmp_path: Path, simulator: str) -> None:
    processes = Processes(tmp_path)
    plain_port = free_port()  # the only port guessed: the others are announced at start
    env = {
        "BASTION_SIMULATOR_URL": simulator,
        "BASTION_SIMULATOR_API_KEY": UPSTREAM_KEY,
        "BASTION_PORT": "0",
        "BASTION_DATA_DIR": str(tmp_path / "data"),
        "BASTION_LOG_LEVEL": "DEBUG",
        "BASTION_ADMIN_ENABLED": "true",
        "BASTION_ADMIN_PORT": "0",
        "BASTION_ADMIN_TOKEN": ADMIN_TOKEN,
        "BASTION_DASHBOARD_SECRET": DASHBOARD_SECRET,
    }
    config = tmp_path / "bastion.toml"
    config.write_text(
        EXAMPLE.read_text().replace("plain_http_port = 0", f"plain_http_port = {plain_port}")
    )
    env["BASTION_CONFIG"] = str(config)
    cli_output: list[str] = []
    secrets: set[str] = {
        UPSTREAM_KEY,
        ADMIN_TOKEN,
        DASHBOARD_SECRET,
        PASSWORD,
        WRONG_PASSWORD,
        FOREIGN_TOKEN,
        BASIC_PASSWORD,
        BASIC_B64,
    }
    runner = CliRunner(env={**{k: None for k in os.environ if k.startswith("BASTION_")}, **env})

    async def bastion(*args: str, shown_once: bool = False) -> str:
        result = await asyncio.to_thread(runner.invoke, cli, ["--json", *args])
        assert result.exit_code == 0, (args, result.output)
        if not shown_once:  # `keys create` shows its secret once, on purpose
            cli_output.append(result.stdout)
        cli_output.append(result.stderr)
        return result.stdout

    try:
        account = json.loads(
            await bastion(
                "accounts",
                "create",
                "--email",
                "ops@example.com",
                "--phone",
                "+14155550100",
                "--tier",
                "pro",
            )
        )["id"]
        await bastion("credits", "grant", account, "10")
        valid = json.loads(
            await bastion("keys", "create", account, "--label", "live", shown_once=True)
        )["key"]
        revoked_made = json.loads(
            await bastion("keys", "create", account, "--label", "old", shown_once=True)
        )
        exposed = json.loads(
            await bastion("keys", "create", account, "--label", "exposed", shown_once=True)
        )["key"]
        revoked = revoked_made["key"]
        await bastion("keys", "revoke", revoked_made["id"], "--reason", "rotation")
        unknown_body = keys.PREFIX + "A" * keys.SECRET_LENGTH
        unknown = unknown_body + keys.checksum(unknown_body)  # well formed, never issued
        malformed = valid[:-1] + ("A" if valid[-1] != "A" else "B")
        secrets |= {valid, revoked, exposed, unknown, malformed}

        processes.start("gateway", ["serve"], env)
        port = int(await announced(processes, "gateway", r"listening on http://[\d.]+:(\d+)"))
        admin_port = int(
            await announced(processes, "gateway", r"admin listener .* on http://[\d.]+:(\d+)")
        )
        announced_plain = await announced(
            processes, "gateway", r"redirect listener on [\d.]+:(\d+)"
        )
        assert int(announced_plain) == plain_port
        base = f"http://127.0.0.1:{port}"
        await processes.wait_http("gateway", f"{base}/healthz")
        async with aiohttp.ClientSession() as http:
            chat = {
                "model": "gpt-oss-20b",
                "messages": [{"role": "user", "content": valid}],
                "max_tokens": 5,
                "user": valid,
            }

            async def api(token: str, path: str = "/v1/chat/completions", **kw: object) -> int:
                headers = {"Authorization": f"Bearer {token}", **kw.pop("headers", {})}  # type: ignore[dict-item]
                async with http.post(base + path, headers=headers, **kw) as response:  # type: ignore[arg-type]
                    await response.read()
                    return response.status

            assert await api(valid, json=chat) == 200
            assert await api(valid, json={**chat, "stream": True}) == 200
            assert await api(valid, json={**chat, "model": valid}) == 400  # echoed in the body only
            assert (
                await api(valid, "/v1/embeddings", json={"model": "bge-m3", "input": valid}) == 200
            )
            assert await api(valid, json={"model": "gpt-oss-20b", "messages": valid}) == 400
            assert await api(valid, data=b"{not json " + valid.encode()) == 400
            for bad in (revoked, unknown, malformed, FOREIGN_TOKEN, f"{valid} {valid}"):
                assert await api(bad, json=chat) == 401
            async with http.get(
                f"{base}/v1/models?api_key={valid}",
                headers={"Authorization": "Basic " + BASIC_B64},
            ) as response:
                assert response.status == 401
            async with http.get(f"{base}/v1/{valid}", headers={"X-Api-Key": valid}) as response:
                assert response.status == 404
            # upstream failures: the operator's credential, the error, the cause
            async with http.post(f"{simulator}/_simulator/control", json={"fault": "5xx"}) as r:
                assert r.status == 200
            assert await api(valid, json=chat) == 502
            async with http.post(f"{simulator}/_simulator/control", json={"fault": "reset"}) as r:
                assert r.status == 200
            assert await api(valid, json={**chat, "stream": True}) == 502
            async with http.post(f"{simulator}/_simulator/control", json={"fault": None}) as r:
                assert r.status == 200

            # malformed HTTP carrying a key: refused by the parser, logged without content
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                f"GET /v1/models HTTP/1.1\r\nAuthorization: Bearer {valid}\r\n"
                f"X-Broken: a\x00b {valid}\r\n\r\n".encode()
            )
            assert (await reader.read(1024)).startswith(b"HTTP/1.0 400")
            writer.close()

            # the plain-HTTP listener: the key is exposed, revoked, never logged
            async with http.get(
                f"http://127.0.0.1:{plain_port}/v1/models",
                headers={"Authorization": f"Bearer {exposed}"},
                allow_redirects=False,
            ) as response:
                assert response.status == 308

            # the admin listener, with a wrong and the right token
            for token, expected in ((PASSWORD, 401), (ADMIN_TOKEN, 200)):
                async with http.get(
                    f"http://127.0.0.1:{admin_port}/metrics",
                    headers={"Authorization": f"Bearer {token}"},
                ) as response:
                    assert response.status == expected
                    metrics = await response.text()

        # the dashboard: sign-up, one-time code, key page, sign-out, sign-in right and wrong
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
            browser = Browserless(base, http)
            await browser.get("/dashboard/signup")
            page = await browser.post(
                "/dashboard/signup",
                {
                    "email": "new@example.com",
                    "password": PASSWORD,
                    "password_confirm": PASSWORD,
                    "phone": PHONE,
                },
            )
            assert page.url.endswith("/dashboard/verify"), page.errors
            await browser.post("/dashboard/verify", {"code": "000000"})  # a wrong code first
            for _ in range(100):  # the console provider's line reaches the log file
                if CODE.search(processes.log("gateway")):
                    break
                await asyncio.sleep(0.02)
            code = _otp(processes.log("gateway"), PHONE)
            page = await browser.post("/dashboard/verify", {"code": code})
            assert page.has("Your phone number is verified"), page.errors
            await browser.get("/dashboard/keys")
            page = await browser.post("/dashboard/keys", {"label": "from the dashboard"})
            dashboard_key = page.text.split(
                'id="new-key" class="secret__value" type="text" value="'
            )[1][: keys.KEY_LENGTH]
            assert keys.is_well_formed(dashboard_key)
            secrets.add(dashboard_key)
            await browser.post("/dashboard/signout", {})
            await browser.get("/dashboard/signin")
            await browser.post(
                "/dashboard/signin", {"email": "new@example.com", "password": WRONG_PASSWORD}
            )
            await browser.get("/dashboard/signin")
            page = await browser.post(
                "/dashboard/signin", {"email": "new@example.com", "password": PASSWORD}
            )
            assert "/dashboard/signin" not in page.url, page.errors

        await bastion("audit", "--limit", "1000")
        await bastion("keys", "list", account)
    finally:
        processes.stop_all()

    log = processes.log("gateway")
    assert '"level":"debug"' in log  # DEBUG was really on (the settings line at start)
    assert "Secret('**********')" in log  # credentials in it are masked
    # the console SMS provider writes the code on purpose (development only): that line aside
    deliberate = [line for line in log.splitlines() if "bastion.sms.console" in line]
    assert len(deliberate) == 1
    elsewhere = "\n".join(line for line in log.splitlines() if line not in deliberate)
    outputs = {"gateway log": elsewhere, "cli": "\n".join(cli_output), "metrics": metrics}
    for where, text in outputs.items():
        for secret in secrets:
            assert secret not in text, f"a secret ({secret[:6]}…) is in the {where}"
        assert not re.search(rf"(?<![0-9A-Za-z]){code}(?![0-9A-Za-z])", text), where
        for candidate in re.findall(r"qbt_[0-9A-Za-z]{38}", text):
            assert not keys.is_well_formed(candidate), f"a key is in the {where}"
    # and the requests were logged, redacted
    assert elsewhere.count('"msg":"request"') >= 15
    assert "qbt_[redacted]" in elsewhere or "[redacted]" in elsewhere

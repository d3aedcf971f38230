"""The dashboard in a real browser: headless Chromium (Debian's package) driven by Playwright,
over TLS with a certificate made for this test, as a new customer and as an operator.

Set ``BASTION_SCREENSHOTS=docs/screenshots`` to write the main pages as PNG files there
(``scripts/screenshots`` does); otherwise they go to the test's temporary directory.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from playwright.async_api import BrowserContext, Page, async_playwright, expect

from tests.dashboard.conftest import make_operator
from tests.dashboard.support import PASSWORD, SmsInbox, logged
from tests.dashboard.usage_seed import seed_usage
from tests.support.harness import Stack

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--ignore-certificate-errors",  # the certificate is this test's own, self-signed
]
PHONE = "+14155550142"


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls(tmp_path: Path) -> tuple[Path, Path]:
    return self_signed(tmp_path)


@pytest.fixture
def config(tls: tuple[Path, Path]) -> dict[str, Any]:
    return {
        "listener": {"tls_cert": str(tls[0]), "tls_key": str(tls[1])},
        "dashboard": {"secret": "test-dashboard-secret-0123456789abcdef"},
    }


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    target = Path(os.environ.get("BASTION_SCREENSHOTS") or tmp_path / "screenshots")
    target.mkdir(parents=True, exist_ok=True)
    return target


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[BrowserContext]:
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium (scripts/test installs Debian's package)")
    async with async_playwright() as p:
        context = await p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a fresh profile every time
            executable_path=str(CHROMIUM),
            args=ARGS,
            headless=True,
            ignore_https_errors=True,
            viewport={"width": 1280, "height": 900},
            permissions=["clipboard-read", "clipboard-write"],
            reduced_motion="reduce",
        )
        context.set_default_timeout(10_000)
        try:
            yield context
        finally:
            await context.close()


def sdk(stack: Stack, tls: tuple[Path, Path], key: str) -> openai.AsyncOpenAI:
    trust = ssl.create_default_context(cafile=str(tls[0]))
    return stack.client(key, http_client=openai.DefaultAsyncHttpxClient(verify=trust))


async def shoot(page: Page, shots: Path, name: str) -> None:
    await page.screenshot(path=str(shots / f"{name}.png"), full_page=True)


async def test_customer_journey(
    stack: Stack,
    browser: BrowserContext,
    inbox: SmsInbox,
    tls: tuple[Path, Path],
    shots: Path,
) -> None:
    assert stack.url.startswith("https://")
    page = await browser.new_page()
    await page.goto(stack.url + "/")
    await expect(page).to_have_url(re.compile(r"/dashboard/signin"))
    await shoot(page, shots, "signin")

    # sign-up, with a mistake first: the errors are announced and focused
    await page.get_by_role("link", name="Create an account").click()
    await page.get_by_label("Email").fill("maria@example.com")
    await page.get_by_label("Password", exact=True).fill("too short")
    await page.get_by_label("Password again").fill("too short")
    await page.get_by_label("Mobile number").fill("+86 138 0013 8000")
    await page.get_by_role("button", name="Create account and send code").click()
    summary = page.get_by_role("alert")
    await expect(summary).to_contain_text("Use at least 12 characters.")
    await expect(summary).to_contain_text("CN cannot sign up")
    await expect(summary).to_be_focused()
    await expect(page.get_by_label("Email")).to_have_value("maria@example.com")
    await expect(page.get_by_label("Mobile number")).to_have_attribute("aria-invalid", "true")
    await shoot(page, shots, "signup-errors")
    assert inbox.count() == 0
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_label("Password again").fill(PASSWORD)
    await page.get_by_label("Mobile number").fill("+1 415 555 0142")
    await page.get_by_role("button", name="Create account and send code").click()

    # the code from the console provider
    await expect(page.get_by_role("heading", name="Verify your phone")).to_be_visible()
    await shoot(page, shots, "verify")
    await page.get_by_label("Code").fill(
        "000000" if inbox.code_for(PHONE) != "000000" else "111111"
    )
    await page.get_by_role("button", name="Verify").click()
    await expect(page.get_by_role("alert")).to_contain_text("4 tries left")
    await page.get_by_label("Code").fill(inbox.code_for(PHONE))
    await page.get_by_role("button", name="Verify").click()
    await expect(page.get_by_role("status")).to_contain_text("Your phone number is verified")

    # the session cookie as the browser holds it
    (cookie,) = [c for c in await browser.cookies() if c["name"] == "__Host-bastion_session"]
    assert cookie["secure"]
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Lax"
    assert cookie["path"] == "/"
    assert cookie["domain"] == "127.0.0.1"
    assert await page.evaluate("document.cookie") == ""  # HttpOnly: invisible to scripts

    # a change without the CSRF token, from the page's own scripts, is refused
    status = await page.evaluate(
        """async () => (await fetch('/dashboard/keys', {method: 'POST',
            headers: {'Content-Type': 'application/x-www-form-urlencoded'},
            body: 'label=no-token'})).status"""
    )
    assert status == 403

    account = await stack.runtime.db.accounts.by_email("maria@example.com")
    assert account is not None
    await stack.runtime.credits.grant(account.id, 5_000_000, actor="test", reason="trial")

    # a key, shown once, copied
    await page.get_by_role("link", name="API keys").click()
    await page.get_by_label("Label").fill("laptop")
    await page.get_by_role("button", name="Create key").click()
    await expect(page.get_by_text("you will not see this key again")).to_be_visible()
    secret = await page.get_by_label("API key").input_value()
    assert re.fullmatch(r"qbt_[0-9A-Za-z]{38}", secret)
    await page.get_by_role("button", name="Copy").click()
    await expect(page.locator("#copy-status")).to_have_text(re.compile("Copied|Selected"))
    await page.get_by_label("API key").evaluate("el => el.value = 'qbt_' + '•'.repeat(38)")
    await shoot(page, shots, "key-created")  # (the secret masked: screenshots are published)

    # the key works with the OpenAI SDK
    client = sdk(stack, tls, secret)
    reply = await client.chat.completions.create(
        model="gpt-oss-120b", messages=[{"role": "user", "content": "Hello!"}], max_tokens=12
    )
    assert reply.choices[0].message.content
    await logged(stack, 1)
    if os.environ.get("BASTION_SCREENSHOTS"):
        await seed_usage(stack, account.id)  # two weeks of demo traffic for the pictures

    # ... and the call is in the usage
    await page.get_by_role("link", name="Usage").click()
    await expect(page.get_by_role("region", name="Recent requests", exact=True)).to_contain_text(
        "gpt-oss-120b"
    )
    await expect(page.get_by_role("region", name="Recent requests", exact=True)).to_contain_text(
        "laptop"
    )
    await expect(page.locator("svg.chart")).to_have_count(2)
    await page.get_by_role("link", name="key", exact=True).click()  # htmx swaps the charts
    await expect(page).to_have_url(re.compile(r"by=key"))
    await expect(page.get_by_role("list", name="Legend").first).to_contain_text("laptop")
    await shoot(page, shots, "usage")
    async with page.expect_download() as download_info:
        await page.get_by_role("link", name=re.compile("Export CSV")).click()
    download = await download_info.value
    csv_text = Path(await download.path()).read_text()
    assert "gpt-oss-120b" in csv_text

    await page.get_by_role("link", name="Overview").click()
    await expect(page.get_by_role("heading", name="Balance")).to_be_visible()
    await shoot(page, shots, "overview")

    # keyboard: the first Tab reaches the skip link, which moves to the main content
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("link", name="Skip to main content")).to_be_focused()

    # revoke, with confirmation; the SDK is refused afterwards
    await page.get_by_role("link", name="API keys").click()
    await shoot(page, shots, "keys")
    await page.get_by_role("link", name="Revoke laptop").click()
    await expect(page.get_by_role("heading")).to_contain_text("Revoke the key “laptop”?")
    await shoot(page, shots, "key-revoke")
    await page.get_by_role("button", name="Revoke key").click()
    await expect(page.get_by_role("status")).to_contain_text("The key is revoked")
    with pytest.raises(openai.AuthenticationError):
        await client.models.list()

    # sign out: the dashboard needs signing in again
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("status")).to_contain_text("You are signed out")
    await page.goto(stack.url + "/dashboard/keys")
    await expect(page).to_have_url(re.compile(r"/dashboard/signin"))


async def test_operator_journey(
    stack: Stack, browser: BrowserContext, tls: tuple[Path, Path], shots: Path
) -> None:
    await make_operator(stack)
    customer = await stack.account(usd="3", email="acme-billing@example.com", tier="free")
    client = sdk(stack, tls, await stack.key(customer.id, "acme-prod"))
    await client.chat.completions.create(
        model="gpt-oss-20b", messages=[{"role": "user", "content": "hi"}], max_tokens=4
    )
    await logged(stack, 1)
    if os.environ.get("BASTION_SCREENSHOTS"):
        await seed_usage(stack, customer.id)

    page = await browser.new_page()
    await page.goto(stack.url + "/dashboard/signin")
    await page.get_by_label("Email").fill("ops@example.com")
    await page.get_by_label("Password").fill("wrong password entirely")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("The email or password is not correct.")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()

    # search as you type (htmx), then open the account
    await page.get_by_role("link", name="Accounts").click()
    await page.get_by_label("Search by email, account id or phone").fill("acme")
    results = page.locator("#account-results")
    await expect(results).to_contain_text("1 account matching “acme”")
    await shoot(page, shots, "operator-accounts")
    await results.get_by_role("link", name="acme-billing@example.com").click()

    # credit: a bad amount, then a grant with a reason
    await page.get_by_label("Amount (USD)").fill("lots")
    await page.get_by_label("Reason").fill("goodwill")
    await page.get_by_role("button", name="Post to ledger").click()
    await expect(page.get_by_role("alert").first).to_contain_text("Enter an amount in USD")
    await page.get_by_label("Amount (USD)").fill("20")
    await page.get_by_role("button", name="Post to ledger").click()
    await expect(page.get_by_role("status")).to_contain_text("The credit change is in the ledger")
    await expect(
        page.get_by_role("region", name="Latest ledger entries", exact=True)
    ).to_contain_text("goodwill")

    # tier, then suspension (confirmed with the box): the customer's key stops working
    await page.get_by_label("Move to tier").select_option("pro")
    await page.get_by_role("button", name="Change tier").click()
    await expect(page.get_by_role("status")).to_contain_text("The tier is changed")
    await shoot(page, shots, "operator-account")
    await page.get_by_role("button", name="Suspend account").click()
    await expect(page.get_by_role("alert").first).to_contain_text("Tick the box")
    await page.get_by_label("I understand that every key of this account stops working.").check()
    await page.get_by_role("button", name="Suspend account").click()
    await expect(page.get_by_role("status")).to_contain_text("The account status is changed")
    with pytest.raises(openai.AuthenticationError):
        await client.models.list()

    await page.get_by_role("link", name="Upstreams").click()
    await expect(
        page.get_by_role("region", name="Deployments and their health", exact=True)
    ).to_contain_text("healthy")
    await shoot(page, shots, "operator-upstreams")
    await page.get_by_role("link", name="Platform usage").click()
    await page.get_by_role("link", name="account", exact=True).click()
    await expect(page.get_by_role("list", name="Legend").first).to_contain_text("acme-billing")
    await shoot(page, shots, "operator-usage")

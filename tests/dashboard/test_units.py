"""The dashboard's pure pieces: money and unit formatting, charts, redirects, code and
password rules, client addresses."""

from __future__ import annotations

import ipaddress

import pytest

from bastion.admin.forms import FormError
from bastion.admin.passwords import check_new_password, hash_password, verify_password
from bastion.admin.verification import CheckResult, Outcome, normalise_code
from bastion.dashboard.charts import MAX_SERIES, Chart, _nice_max, build_series, svg
from bastion.dashboard.guards import safe_next
from bastion.dashboard.render import money, phone_hint, units
from bastion.dashboard.routes.alerts import parse_threshold
from bastion.dashboard.routes.keys import parse_cap
from bastion.storage.sql.usage import DailyUsage


@pytest.mark.parametrize(
    ("micros", "text"),
    [
        (0, "$0.00"),
        (12_500_000, "$12.50"),
        (125, "$0.000125"),
        (-3_000_000, "-$3.00"),
        (1_234_567_890_000, "$1,234,567.89"),
        (None, "—"),
    ],
)
def test_money(micros: int | None, text: str) -> None:
    assert money(micros) == text


def test_units_and_phone_hint() -> None:
    assert units({"input_tokens": 1200, "output_tokens": 7}) == "1,200 in / 7 out tokens"
    assert units({"images": 2}) == "2 images"
    assert units({"audio_ms": 1500}) == "1.5 s audio"
    assert units(None) == "—"
    assert phone_hint("+14155550123") == "+1 ••• ••• 0123"
    assert phone_hint("+33612345678") == "+33 ••• ••• 5678"


def test_chart_series_keep_the_largest_groups() -> None:
    days = [20261101, 20261102]
    rows = [DailyUsage(20261101, f"m{i}", i + 1, (i + 1) * 10) for i in range(10)]
    rows.append(DailyUsage(20251231, "old", 1, 1))  # outside the period
    series = build_series(rows, days, lambda r: r.cost, {"m9": "Model nine"})
    assert len(series) == MAX_SERIES
    assert series[0].name == "Model nine"
    assert series[-1].name == "4 others"
    assert sum(s.total for s in series) == sum(r.cost for r in rows[:10])
    assert [_nice_max(v) for v in (0, 1, 3, 7, 12, 999)] == [1, 1, 5, 10, 20, 1000]
    chart = Chart("c", "Title <b>", tuple(days), series, str)
    image = str(svg(chart, str))
    assert image.count("<rect") == MAX_SERIES  # one bar segment per series on the one day
    assert "Title &lt;b&gt;" in image
    assert 'role="img"' in image


@pytest.mark.parametrize(
    ("target", "safe"),
    [
        ("/dashboard/keys", "/dashboard/keys"),
        ("/dashboard/usage?by=key", "/dashboard/usage?by=key"),
        ("https://evil.example/dashboard/", None),
        ("//evil.example/dashboard/", None),
        ("/dashboard\\..\\evil", None),
        ("/v1/models", None),
        ("", None),
        (None, None),
    ],
)
def test_safe_next(target: str | None, safe: str | None) -> None:
    assert safe_next(target) == safe


def test_codes() -> None:
    assert normalise_code(" 123 456 ") == "123456"
    assert normalise_code("123-456") == "123456"
    for bad in ("12345", "1234567", "12a456", "١٢٣٤٥٦"):  # the last: Arabic-Indic digits
        assert normalise_code(bad) is None
    assert CheckResult(Outcome.WRONG, None, checks_left=1).message().endswith("1 try left.")


def test_password_rules() -> None:
    check_new_password("long enough passphrase", "long enough passphrase", email="", min_length=12)
    cases = [
        ("short", "short", "password"),
        ("aaaaaaaaaaaaaaaa", "aaaaaaaaaaaaaaaa", "password"),
        ("long enough passphrase", "other", "password_confirm"),
    ]
    for password, confirm, field in cases:
        with pytest.raises(FormError) as caught:
            check_new_password(password, confirm, email="me@example.com", min_length=12)
        assert field in caught.value.errors
    with pytest.raises(FormError):
        check_new_password(
            "me@example.com", "me@example.com", email="me@example.com", min_length=12
        )


async def test_argon2id_at_owasp_parameters() -> None:
    stored = await hash_password("correct horse battery staple")
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert await verify_password(stored, "correct horse battery staple")
    assert not await verify_password(stored, "wrong")
    assert not await verify_password(None, "anything")  # same work, still no


@pytest.mark.parametrize(
    ("text", "micros"),
    [("25", 25_000_000), ("$12.50", 12_500_000), ("1,000", 1_000_000_000), ("", None)],
)
def test_amounts(text: str, micros: int | None) -> None:
    assert parse_cap(text) == micros
    assert parse_threshold(text) == micros


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ten", "Enter an amount in USD, like 25 or 12.50, or leave it empty."),
        ("-$5", "Enter an amount in USD, like 25 or 12.50, or leave it empty."),
        ("0.0000001", "Enter an amount in USD, like 25 or 12.50, or leave it empty."),
        ("$0", "Enter more than $0, or leave it empty for no cap."),
        ("1,000,000,001", "Enter at most $1,000,000,000."),  # said "more than $0" once
    ],
)
def test_a_bad_amount_is_named_for_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(FormError) as refused:
        parse_cap(text)
    assert refused.value.errors == {"monthly_spend_cap": message}


def test_limits_end_at_a_billion_and_start_above_zero() -> None:
    assert parse_cap("1,000,000,000") == 10**15
    with pytest.raises(FormError) as refused:
        parse_threshold("0")
    assert refused.value.errors == {
        "threshold": "Enter more than $0, or leave it empty to turn alerts off."
    }


def test_client_address_behind_trusted_proxies() -> None:
    from aiohttp.test_utils import make_mocked_request

    from bastion.dashboard.middleware import client_ip

    proxies = (ipaddress.ip_network("10.0.0.0/8"),)
    forwarded = {"X-Forwarded-For": "198.51.100.1, 203.0.113.9, 10.0.0.7"}
    via_proxy = make_mocked_request("GET", "/", headers=forwarded).clone(remote="10.0.0.6")
    assert client_ip(via_proxy, proxies) == "203.0.113.9"  # the last hop not a proxy
    assert client_ip(via_proxy, ()) == "10.0.0.6"  # no trusted proxies: the peer
    direct = make_mocked_request("GET", "/", headers=forwarded).clone(remote="192.0.2.4")
    assert client_ip(direct, proxies) == "192.0.2.4"  # anyone can write X-Forwarded-For

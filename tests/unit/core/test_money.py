"""Money as integers: exact parsing, one rounding up per request, exact formatting."""

from __future__ import annotations

import pytest

from bastion.core.money import (
    Picos,
    cost,
    format_usd,
    parse_price,
    parse_usd,
    usd_text,
)


@pytest.mark.parametrize(
    ("text", "micros"),
    [
        ("12.5", 12_500_000),
        ("0", 0),
        ("0.000001", 1),
        ("25", 25_000_000),
        (" 3.25 ", 3_250_000),
        (10, 10_000_000),
        (0.1, 100_000),  # a TOML float goes through its repr, not its binary value
        ("1e2", 100_000_000),
    ],
)
def test_parse_usd(text: str | int | float, micros: int) -> None:
    assert parse_usd(text) == micros


@pytest.mark.parametrize("text", ["0.0000001", "-1", "abc", "inf", "NaN", "", "1,5"])
def test_parse_usd_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_usd(text)


def test_negative_amounts_only_when_asked() -> None:
    assert parse_usd("-1.5", allow_negative=True) == -1_500_000


@pytest.mark.parametrize(
    ("text", "per_units", "picos"),
    [
        ("0.15", 1_000_000, 150_000),  # $0.15 per million tokens
        ("0.60", 1_000_000, 600_000),
        ("0.003", 1, 3_000_000_000),  # per image
        ("15", 1_000_000, 15_000_000),  # $15 per million characters
        ("0", 1, 0),
    ],
)
def test_parse_price(text: str, per_units: int, picos: int) -> None:
    assert parse_price(text, per_units=per_units) == picos


def test_parse_price_refuses_what_it_cannot_hold_exactly() -> None:
    with pytest.raises(ValueError, match="finer"):
        parse_price("0.0000000000001")
    with pytest.raises(ValueError, match="negative"):
        parse_price("-0.1")


def test_cost_rounds_up_once() -> None:
    token = parse_price("0.15", per_units=1_000_000)
    assert cost((1_000_000, token)) == 150_000  # exactly $0.15
    assert cost((1, Picos(1))) == 1  # never rounded down to free
    assert cost((1, Picos(1)), (1, Picos(1))) == 1  # summed first, rounded once
    assert cost((1_000_000, Picos(1))) == 1
    assert cost((1_000_001, Picos(1))) == 2
    assert cost() == 0
    assert cost((0, token)) == 0


def test_cost_refuses_negative_units() -> None:
    with pytest.raises(ValueError, match="negative"):
        cost((-1, Picos(1)))


@pytest.mark.parametrize(
    ("micros", "text"),
    [
        (12_500_000, "$12.500000"),
        (0, "$0.000000"),
        (1, "$0.000001"),
        (-1_500_000, "-$1.500000"),
        (10_000_000, "$10.000000"),
    ],
)
def test_format_usd(micros: int, text: str) -> None:
    assert format_usd(micros) == text


@pytest.mark.parametrize(
    ("micros", "text"),
    [(12_500_000, "12.5"), (0, "0"), (1, "0.000001"), (1_000_000, "1"), (-2_500_000, "-2.5")],
)
def test_usd_text(micros: int, text: str) -> None:
    assert usd_text(micros) == text


@pytest.mark.parametrize(("micros", "text"), [(10_000_000, "10"), (100_000_000, "100")])
def test_usd_text_whole_tens(micros: int, text: str) -> None:
    assert usd_text(micros) == text

"""Money as integers: credit is counted in micro-USD, prices in pico-USD per unit.

Floats never touch money.  Operators write prices as decimal strings in USD (per million
tokens or characters, per image, per second of audio); :func:`parse_usd` and
:func:`parse_price` turn them into exact integers or fail.  A request's cost is the exact sum
of ``units × price`` in pico-USD, rounded up once to whole micro-USD, so that many small
requests are never rounded to zero.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import NewType

Micros = NewType("Micros", int)
"""An amount of credit in micro-USD (1 USD = 1_000_000)."""

Picos = NewType("Picos", int)
FREE = Picos(0)
"""A price per unit in pico-USD (1 USD = 10**12)."""

MICROS_PER_USD = 1_000_000
PICOS_PER_MICRO = 1_000_000
PICOS_PER_USD = MICROS_PER_USD * PICOS_PER_MICRO


def _decimal(text: str | int | float) -> Decimal:
    if isinstance(text, float):
        # TOML floats are binary; go through repr so "0.1" stays 0.1 and not 0.1000000000000000055
        text = repr(text)
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation as exc:
        raise ValueError(f"{text!r} is not a decimal number") from exc
    if not value.is_finite():
        raise ValueError(f"{text!r} is not a finite number")
    return value


def parse_usd(text: str | int | float, *, allow_negative: bool = False) -> Micros:
    """``"12.5"`` → 12_500_000 micro-USD; more than six decimals is an error, not a rounding."""
    value = _decimal(text) * MICROS_PER_USD
    if value != value.to_integral_value():
        raise ValueError(f"{text!r} has more precision than one micro-USD")
    if value < 0 and not allow_negative:
        raise ValueError(f"{text!r} is negative")
    return Micros(int(value))


def parse_price(text: str | int | float, *, per_units: int = 1) -> Picos:
    """A price in USD for ``per_units`` units → pico-USD per single unit, exactly."""
    value = _decimal(text) * PICOS_PER_USD / per_units
    if value < 0:
        raise ValueError(f"{text!r} is negative")
    if value != value.to_integral_value():
        raise ValueError(f"{text!r} per {per_units:,} units is finer than one pico-USD per unit")
    return Picos(int(value))


def cost(*lines: tuple[int, Picos]) -> Micros:
    """Sum of ``units × price`` over the lines, rounded up once to whole micro-USD."""
    total = 0
    for units, price in lines:
        if units < 0:
            raise ValueError("units cannot be negative")
        total += units * price
    return Micros(-(-total // PICOS_PER_MICRO))


def format_usd(amount: int) -> str:
    """Micro-USD → ``"$12.500000"``-style text with all six decimals (exact, no float)."""
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(amount), MICROS_PER_USD)
    return f"{sign}${whole}.{frac:06d}"


def usd_text(amount: int) -> str:
    """Micro-USD → plain decimal USD string for JSON (``"12.5"``), exact."""
    return format((Decimal(amount) / MICROS_PER_USD).normalize(), "f") if amount else "0"

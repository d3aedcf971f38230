"""Amounts of money typed into the dashboard's forms: ``$1,250.50`` → micro-USD, exactly."""

from __future__ import annotations

from bastion.admin.forms import FormError
from bastion.core.money import parse_usd

MAX_LIMIT_MICROS = 10**15
"""A cap or a threshold of a billion dollars: anything above it is a typo."""


def _plain(text: str) -> str:
    """The number as typed, without spaces around it, a leading ``$`` or thousands separators."""
    return text.strip().removeprefix("$").replace(",", "")


def typed_usd(text: str, *, signed: bool = False) -> int:
    """The amount in micro-USD (a ``$`` and thousands separators allowed); ValueError if the
    text is not one, has more than six decimals, or is negative when ``signed`` is false."""
    text = _plain(text)
    if text.startswith("-$"):
        text = "-" + text[2:]
    return int(parse_usd(text, allow_negative=signed))


def optional_limit(text: str, field: str, *, example: str, when_empty: str) -> int | None:
    """A positive amount for ``field``, or None when the field is left empty (``when_empty``
    says what that means, in the error messages)."""
    if not _plain(text):
        return None
    try:
        micros = typed_usd(text)
    except ValueError:
        raise FormError.field(
            field, f"Enter an amount in USD, like {example}, or leave it empty."
        ) from None
    if micros <= 0:
        raise FormError.field(field, f"Enter more than $0, or leave it empty {when_empty}.")
    if micros > MAX_LIMIT_MICROS:
        raise FormError.field(field, "Enter at most $1,000,000,000.")
    return micros

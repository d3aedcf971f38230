"""Phone numbers parsed and normalised to E.164 with Google's libphonenumber rules."""

from __future__ import annotations

import phonenumbers


class PhoneError(ValueError):
    pass


def normalise(text: str, default_region: str | None = None) -> str:
    """``"+1 (555) 010-0100"`` → ``"+15550100100"``; raises PhoneError if not a valid number."""
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        raise PhoneError(f"{text!r} is not a phone number (use the +<country code> form)") from None
    if not phonenumbers.is_valid_number(number):
        raise PhoneError(f"{text!r} is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def region_of(e164: str) -> str | None:
    return phonenumbers.region_code_for_number(phonenumbers.parse(e164, None))

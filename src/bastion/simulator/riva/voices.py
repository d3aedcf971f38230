"""The simulator's voices: Riva-style names for the four default languages, and how each maps
onto an eSpeak NG voice when real speech is produced."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

NATIVE_RATE_HZ = 22050
"""The rate Riva's English models synthesize at, and eSpeak NG's output rate."""


@dataclass(frozen=True, slots=True)
class Language:
    code: str
    prefix: str
    """Riva voice names are ``<prefix>.<Subvoice>``, e.g. ``English-US.Female-1``."""
    espeak: str


LANGUAGES: Mapping[str, Language] = {
    lang.code: lang
    for lang in (
        Language("en-US", "English-US", "en-us"),
        Language("de-DE", "German-DE", "de"),
        Language("es-ES", "Spanish-ES", "es"),
        Language("it-IT", "Italian-IT", "it"),
    )
}
SUBVOICES = ("Female-1", "Male-1", "Female-2", "Male-2")


def voices_of(language_code: str) -> tuple[str, ...]:
    language = LANGUAGES.get(language_code)
    if language is None:
        return ()
    return tuple(f"{language.prefix}.{sub}" for sub in SUBVOICES)


def espeak_voice(language_code: str, voice_name: str) -> str:
    """``en-US`` + ``English-US.Female-2`` → ``en-us+f2``: the language, then a variant."""
    language = LANGUAGES.get(language_code)
    base = language.espeak if language else language_code.lower()
    sub = voice_name.rpartition(".")[2].lower()
    number = sub.rpartition("-")[2]
    index = number if number.isdigit() and 1 <= int(number) <= 4 else "1"
    if sub.startswith("female"):
        return f"{base}+f{index}"
    if sub.startswith("male"):
        return f"{base}+m{index}"
    return base

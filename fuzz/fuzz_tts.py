"""Fuzz text-to-speech validation (``gateway/tts.parse_speech``) on arbitrary JSON bodies and
on well-typed bodies with arbitrary values.

Property: a body is either accepted — and then every field is within its documented bounds —
or refused with ``InvalidRequestError`` (400); never another exception.
"""

from __future__ import annotations

from typing import Any

import atheris

with atheris.instrument_imports(include=["bastion"]):
    import orjson

    from bastion.errors import InvalidRequestError
    from bastion.gateway.audio_format import FORMATS
    from bastion.gateway.tts import (
        MAX_SAMPLE_RATE_HZ,
        MAX_VOICE_NAME_CHARS,
        MIN_SAMPLE_RATE_HZ,
        parse_speech,
    )

from common import main

LANGUAGES = {"en-us": "en-US", "de-de": "de-DE", "es-es": "es-ES", "it-it": "it-IT"}
MAX_CHARS = 200


def _value(fdp: atheris.FuzzedDataProvider) -> Any:
    kind = fdp.ConsumeIntInRange(0, 7)
    if kind == 0:
        return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 300))
    if kind == 1:
        return fdp.ConsumeIntInRange(-(2**40), 2**40)
    if kind == 2:
        return fdp.ConsumeRegularFloat()
    if kind == 3:
        return fdp.ConsumeBool()
    if kind == 4:
        return None
    if kind == 5:
        return [fdp.ConsumeIntInRange(0, 9)]
    if kind == 6:
        return {"nested": fdp.ConsumeIntInRange(0, 9)}
    return [1, 2, 3, 4, 20, 8000, 16000, 22050, 48000][fdp.ConsumeIntInRange(0, 8)]


def _check(payload: Any) -> None:
    if not isinstance(payload, dict):
        return
    try:
        request, audio = parse_speech(payload, LANGUAGES, MAX_CHARS)
    except InvalidRequestError:
        return
    assert 1 <= len(request.text) <= MAX_CHARS
    assert not request.text.isspace()
    assert request.language_code in LANGUAGES.values()
    assert request.encoding in FORMATS
    assert audio is FORMATS[request.encoding]
    assert MIN_SAMPLE_RATE_HZ <= request.sample_rate_hz <= MAX_SAMPLE_RATE_HZ
    assert 1 <= len(request.voice_name) <= MAX_VOICE_NAME_CHARS


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    if fdp.ConsumeBool():
        try:
            payload = orjson.loads(fdp.ConsumeBytes(fdp.remaining_bytes()))
        except orjson.JSONDecodeError:
            return
        _check(payload)
        return
    fields = ("text", "language_code", "encoding", "sample_rate_hz", "voice_name")
    _check({name: _value(fdp) for name in fields if fdp.ConsumeIntInRange(0, 9)})


if __name__ == "__main__":
    main(test_one_input)

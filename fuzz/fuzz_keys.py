"""Fuzz the API key parser (``core/keys.py``) and the log redaction that must mask keys.

Properties: parsing never raises; a token that parses is exactly ``qbt_`` + 32 + 6 base62
characters with a valid checksum; a valid key with any one character changed never parses
(CRC32 catches every single substitution); ``redact_text`` never lets a valid key through.
"""

from __future__ import annotations

import atheris

with atheris.instrument_imports(include=["bastion"]):
    from bastion.core import keys
    from bastion.observability.logging import redact_text

from common import main

ALPHABET = keys.ALPHABET


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    header = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 200))
    token = keys.bearer_token(header)
    for candidate in (header, token):
        if candidate is not None and keys.is_well_formed(candidate):
            assert candidate.startswith(keys.PREFIX)
            assert len(candidate) == keys.KEY_LENGTH
            assert set(candidate[4:]) <= set(ALPHABET)
            assert len(keys.digest(candidate)) == 32
            assert "qbt_[redacted]" in redact_text(f"Authorization: Bearer {candidate}")
            assert candidate not in redact_text(f"key={candidate} text")

    # a real key, one character substituted: never valid
    secret = "".join(ALPHABET[fdp.ConsumeIntInRange(0, 61)] for _ in range(keys.SECRET_LENGTH))
    body = keys.PREFIX + secret
    key = body + keys.checksum(body)
    assert keys.is_well_formed(key)
    assert key not in redact_text(f"{header}{key}{header}")
    position = fdp.ConsumeIntInRange(len(keys.PREFIX), keys.KEY_LENGTH - 1)
    replacement = ALPHABET[fdp.ConsumeIntInRange(0, 61)]
    if replacement != key[position]:
        mutated = key[:position] + replacement + key[position + 1 :]
        assert not keys.is_well_formed(mutated), mutated


if __name__ == "__main__":
    main(test_one_input)

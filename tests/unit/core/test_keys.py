"""The ``qbt_`` key format: prefix, ≥128-bit secret, checksum, digest-only storage."""

from __future__ import annotations

import hashlib
import math

import pytest

from bastion.core import keys


def test_generated_keys_have_the_documented_shape() -> None:
    new = keys.generate()
    assert new.secret.startswith("qbt_")
    assert len(new.secret) == keys.KEY_LENGTH == 4 + 32 + 6
    assert set(new.secret[4:]) <= set(keys.ALPHABET)
    assert keys.is_well_formed(new.secret)
    assert new.display_prefix == new.secret[:12]
    assert new.digest == hashlib.sha256(new.secret.encode()).digest() == keys.digest(new.secret)


def test_the_secret_carries_at_least_128_random_bits() -> None:
    assert keys.SECRET_LENGTH * math.log2(len(keys.ALPHABET)) >= 128
    secrets = {keys.generate().secret for _ in range(2000)}
    assert len(secrets) == 2000


def test_the_checksum_covers_every_value_of_crc32() -> None:
    assert 62**keys.CHECKSUM_LENGTH > 2**32
    assert keys.checksum("qbt_" + "0" * 32) == keys.checksum("qbt_" + "0" * 32)
    assert len(keys.checksum("qbt_" + "z" * 32)) == keys.CHECKSUM_LENGTH


def test_any_single_character_typo_is_caught_without_a_lookup() -> None:
    key = keys.generate().secret
    for position in range(len("qbt_"), keys.KEY_LENGTH):
        replacement = "A" if key[position] != "A" else "B"
        typo = key[:position] + replacement + key[position + 1 :]
        assert not keys.is_well_formed(typo), position


@pytest.mark.parametrize(
    "text",
    [
        "",
        "qbt_",
        "sk-" + "a" * 39,
        "QBT_" + "a" * 38,
        "qbt_" + "a" * 37,
        "qbt_" + "a" * 39,
        "qbt_" + "-" * 38,
        "qbt_" + "é" * 38,
    ],
)
def test_malformed_keys(text: str) -> None:
    assert not keys.is_well_formed(text)


def test_a_swapped_checksum_is_refused() -> None:
    one, other = keys.generate().secret, keys.generate().secret
    assert not keys.is_well_formed(one[:-6] + other[-6:])


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer qbt_x", "qbt_x"),
        ("bearer qbt_x", "qbt_x"),
        ("BEARER  qbt_x ", "qbt_x"),
        ("Basic qbt_x", None),
        ("Token qbt_x", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("qbt_x", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert keys.bearer_token(header) == token


def test_public_ids_are_random_and_prefixed() -> None:
    ids = {keys.new_id("key") for _ in range(500)}
    assert len(ids) == 500
    assert all(i.startswith("key_") and len(i) == 4 + 16 for i in ids)

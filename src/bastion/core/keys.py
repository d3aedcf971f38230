"""The API key format: ``qbt_`` + 32 base62 secret characters + 6 base62 checksum characters.

The secret carries 32 × log2(62) ≈ 190 bits from :mod:`secrets`.  The checksum is CRC32 of
the prefix and secret, as GitHub's tokens do, so that secret scanners can tell a real key from
a random string without a database, and a typo is rejected without a lookup.  Only the
SHA-256 digest of the whole key is stored; a high-entropy token needs no slow hash.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import zlib
from dataclasses import dataclass

PREFIX = "qbt_"
SECRET_LENGTH = 32
CHECKSUM_LENGTH = 6
KEY_LENGTH = len(PREFIX) + SECRET_LENGTH + CHECKSUM_LENGTH
DISPLAY_LENGTH = len(PREFIX) + 8
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ALPHABET_SET = frozenset(ALPHABET)


def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, rem = divmod(number, 62)
        chars.append(ALPHABET[rem])
    return "".join(reversed(chars))


def checksum(body: str) -> str:
    """Six base62 characters of CRC32 over ``qbt_<secret>``."""
    return _base62(zlib.crc32(body.encode("ascii")), CHECKSUM_LENGTH)


@dataclass(frozen=True, slots=True)
class NewKey:
    """A freshly generated key: the secret is shown once, then only the digest remains."""

    secret: str
    digest: bytes
    display_prefix: str


def generate() -> NewKey:
    body = PREFIX + "".join(secrets.choice(ALPHABET) for _ in range(SECRET_LENGTH))
    key = body + checksum(body)
    return NewKey(secret=key, digest=digest(key), display_prefix=key[:DISPLAY_LENGTH])


def is_well_formed(key: str) -> bool:
    """Prefix, length, alphabet and checksum; no I/O, constant work per length."""
    if len(key) != KEY_LENGTH or not key.startswith(PREFIX):
        return False
    rest = key[len(PREFIX) :]
    if not _ALPHABET_SET.issuperset(rest):
        return False
    body = key[: len(PREFIX) + SECRET_LENGTH]
    return hmac.compare_digest(checksum(body), key[-CHECKSUM_LENGTH:])


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("ascii")).digest()


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer …`` header, or None."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    return token or None


def new_id(kind: str) -> str:
    """Public identifiers (``acct_…``, ``key_…``): random, not secret, safe to log."""
    return f"{kind}_{secrets.token_hex(8)}"

"""Dashboard passwords: Argon2id at OWASP's parameters, and what makes a password acceptable.

Argon2id with m = 19 MiB, t = 2, p = 1 (OWASP Password Storage Cheat Sheet).  Hashing takes
tens of milliseconds of CPU, so it runs in a worker thread (argon2-cffi releases the GIL)
instead of stalling the event loop that also serves API traffic.  Rules follow NIST SP
800-63B: a minimum length, no composition rules, no reuse of very common passwords or of the
account's own email.
"""

from __future__ import annotations

import asyncio
import functools

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from bastion.admin.forms import FormError

MAX_LENGTH = 256
HASHER = PasswordHasher(
    time_cost=2, memory_cost=19456, parallelism=1, hash_len=32, salt_len=16, type=Type.ID
)

# The most common passwords of public breach corpora that are long enough to pass the
# length rule; a short list on purpose: the length rule does most of the work.
COMMON = frozenset(
    {
        "123456789012",
        "1234567890123",
        "12345678901234",
        "123456123456",
        "qwertyuiopasdf",
        "qwertyuiop123",
        "qwerty123456",
        "password1234",
        "password12345",
        "password123456",
        "passwordpassword",
        "iloveyou1234",
        "abcdefghijkl",
        "abc123abc123",
        "111111111111",
        "000000000000",
        "aaaaaaaaaaaa",
        "letmeinletmein",
        "welcome12345",
        "changeme1234",
        "administrator",
        "1q2w3e4r5t6y",
        "qazwsxedcrfv",
        "zaq12wsxcde3",
    }
)


def password_problem(password: str, *, email: str, min_length: int) -> str | None:
    """What is wrong with a new password, in words for its owner; None if nothing."""
    if len(password) < min_length:
        return f"Use at least {min_length} characters."
    if len(password) > MAX_LENGTH:
        return f"Use at most {MAX_LENGTH} characters."
    if password.lower() in COMMON or len(set(password)) < 4:
        return "This password is too easy to guess; choose another."
    if email and password.lower() == email.lower():
        return "Do not use your email address as your password."
    return None


def check_new_password(
    password: str,
    confirm: str,
    *,
    email: str,
    min_length: int,
    field: str = "password",
    confirm_field: str = "password_confirm",
) -> None:
    """Raise a FormError naming the problem with a new password and its confirmation."""
    problem = password_problem(password, email=email, min_length=min_length)
    if problem is not None:
        raise FormError({field: problem})
    if password != confirm:
        raise FormError({confirm_field: "The two passwords are not the same."})


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(HASHER.hash, password)


async def verify_password(stored: str | None, password: str) -> bool:
    """Constant work whether or not the account has a password (no timing oracle)."""
    target = stored or _dummy_hash()
    try:
        await asyncio.to_thread(HASHER.verify, target, password[:MAX_LENGTH])
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return stored is not None


def needs_rehash(stored: str) -> bool:
    return HASHER.check_needs_rehash(stored)


@functools.cache
def _dummy_hash() -> str:
    return HASHER.hash("bastion: an account without a password")

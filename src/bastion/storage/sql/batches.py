"""The shape of a settlement batch, shared by the SQLite and the PostgreSQL batch writers."""

from __future__ import annotations

from collections import defaultdict

from bastion.core.records import Charge


class DuplicateChargeError(Exception):
    """A row of the batch broke a unique constraint (a request id written before): nothing of
    the batch was written."""


def by_account(charges: list[Charge]) -> list[tuple[str, list[Charge]]]:
    """The batch's charges grouped by account, accounts in a fixed order (so concurrent
    replicas never deadlock on each other's rows)."""
    groups: dict[str, list[Charge]] = defaultdict(list)
    for charge in charges:
        groups[charge.account_id].append(charge)
    return sorted(groups.items())


def number(items: list[Charge], end: int, versions: dict[str, int | None]) -> None:
    """Give each of an account's charges its ledger version: the account's version moved by
    one per charge, up to ``end``, in the batch's order."""
    first = end - len(items) + 1
    for index, item in enumerate(items):
        versions[item.request_id] = first + index

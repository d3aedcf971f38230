"""``bastion audit``: the audit log of operator and security events, filtered.

Every credit change, tier change, suspension, key creation, revocation and limit change
(whoever made it: the CLI, the dashboard's operator pages, the plain-HTTP listener revoking an
exposed key), every dashboard sign-in and failed sign-in, password change and reset, and
phone verification is one event: when, who (``actor``), what (``action``), on which account
and key, and details.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import click

from bastion.cli.context import CliContext, emit, fail, json_option, pass_ctx, run_with_db
from bastion.core.calendar import now_ms

_RELATIVE = re.compile(r"^(\d+)\s*(s|m|h|d|w)$")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def parse_when(text: str, now: int) -> int:
    """A moment as epoch milliseconds: ``30m``, ``2h``, ``7d``, ``1w`` ago, or an ISO 8601 date
    or date-time (UTC unless it names its offset), e.g. ``2026-11-26`` or
    ``2026-11-26T09:30:00+01:00``."""
    text = text.strip()
    relative = _RELATIVE.match(text)
    if relative:
        return now - int(relative[1]) * _UNIT_MS[relative[2]]
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: use 30m, 2h, 7d, 1w, or an ISO date such as 2026-11-26"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@click.command("audit")
@click.option("--account", "account_id", default=None, help="Events of this account.")
@click.option("--key", "key_id", default=None, help="Events of this key (key_…).")
@click.option(
    "--action", default=None, help="e.g. key.revoke, key.exposed, signin.failed; key.* for all."
)
@click.option(
    "--actor", default=None, help="Who acted: cli, dashboard, plain-http-listener, account:*."
)
@click.option("--since", default=None, help="From this time on: 30m, 2h, 7d or an ISO date.")
@click.option("--until", default=None, help="Before this time: 30m, 2h, 7d or an ISO date.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000))
@json_option
@pass_ctx
def audit(
    ctx: CliContext,
    account_id: str | None,
    key_id: str | None,
    action: str | None,
    actor: str | None,
    since: str | None,
    until: str | None,
    limit: int,
) -> None:
    """Operator and security events, newest first."""
    now = now_ms()
    try:
        since_ms = parse_when(since, now) if since else None
        until_ms = parse_when(until, now) if until else None
    except ValueError as exc:
        fail(str(exc))
    events: list[dict[str, Any]] = run_with_db(
        ctx,
        lambda db: db.audit.list(
            account_id=account_id,
            key_id=key_id,
            action=action,
            actor=actor,
            since_ms=since_ms,
            until_ms=until_ms,
            limit=limit,
        ),
    )
    for event in events:
        event["at"] = _iso(event["created_ms"])
    emit(
        ctx,
        events,
        lambda: (
            "\n".join(
                f"{e['at']}  {e['actor']:24} {e['action']:24} "
                f"{e['account_id'] or '-':22} {e['key_id'] or '-':22} "
                f"{'' if e['details'] is None else e['details']}"
                for e in events
            )
            or "no events"
        ),
    )


def register(group: click.Group) -> None:
    group.add_command(audit)

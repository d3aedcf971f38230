"""``bastion credits …``, ``bastion usage``, ``bastion ledger verify``."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import click

from bastion.admin.credits import CreditAdmin
from bastion.cli.context import CliContext, emit, fail, json_option, pass_ctx, run_with_db
from bastion.core.money import format_usd, parse_usd
from bastion.storage.sql.database import Database

ACTOR = "cli"


def _amount(text: str, *, signed: bool = False) -> int:
    try:
        return int(parse_usd(text, allow_negative=signed))
    except ValueError as exc:
        return int(fail(f"amount: {exc}"))


@click.group("credits")
def credits() -> None:
    """Prepaid credit: every change is an entry in the append-only ledger."""


@credits.command("grant")
@click.argument("account_id")
@click.argument("usd")
@click.option("--reason", default="", help="Why (kept in the ledger and the audit log).")
@json_option
@pass_ctx
def grant(ctx: CliContext, account_id: str, usd: str, reason: str) -> None:
    """Add USD of credit to an account (e.g. `bastion credits grant acct_… 25`)."""
    amount = _amount(usd)
    funds = run_with_db(
        ctx, lambda db: CreditAdmin(db).grant(account_id, amount, actor=ACTOR, reason=reason)
    )
    emit(
        ctx,
        {"account_id": account_id, "granted_micros": amount, "balance_micros": funds.balance},
        f"granted {format_usd(amount)}; balance {format_usd(funds.balance)}",
    )


@credits.command("adjust")
@click.argument("account_id")
@click.argument("usd")
@click.option("--reason", required=True)
@json_option
@pass_ctx
def adjust(ctx: CliContext, account_id: str, usd: str, reason: str) -> None:
    """Correct a balance by a signed USD amount (e.g. -- -1.50), with a reason."""
    amount = _amount(usd, signed=True)
    funds = run_with_db(
        ctx, lambda db: CreditAdmin(db).adjust(account_id, amount, actor=ACTOR, reason=reason)
    )
    emit(
        ctx,
        {"account_id": account_id, "adjusted_micros": amount, "balance_micros": funds.balance},
        f"adjusted by {format_usd(amount)}; balance {format_usd(funds.balance)}",
    )


@credits.command("refund")
@click.argument("request_id")
@click.option("--reason", required=True)
@json_option
@pass_ctx
def refund(ctx: CliContext, request_id: str, reason: str) -> None:
    """Give back the full charge of one request (at most once)."""
    funds = run_with_db(
        ctx, lambda db: CreditAdmin(db).refund(request_id, actor=ACTOR, reason=reason)
    )
    emit(
        ctx,
        {"request_id": request_id, "balance_micros": funds.balance},
        f"refunded; balance {format_usd(funds.balance)}",
    )


@credits.command("balance")
@click.argument("account_id")
@json_option
@pass_ctx
def balance(ctx: CliContext, account_id: str) -> None:
    data = run_with_db(ctx, lambda db: CreditAdmin(db).balance(account_id))
    emit(ctx, data, f"{account_id}: {data['balance']}")


@credits.command("history")
@click.argument("account_id")
@click.option("--limit", default=50, show_default=True)
@json_option
@pass_ctx
def history(ctx: CliContext, account_id: str, limit: int) -> None:
    """The account's latest ledger entries."""
    entries = run_with_db(ctx, lambda db: db.ledger.entries(account_id, limit=limit))
    emit(
        ctx,
        entries,
        lambda: (
            "\n".join(
                f"{e['id']:>8}  {e['kind']:10} {format_usd(e['amount']):>16}  "
                f"{e['request_id'] or e['reason'] or ''}"
                for e in entries
            )
            or "no entries"
        ),
    )


@click.command("usage")
@click.argument("account_id", required=False)
@click.option("--key", "key_id", default=None, help="A key's statement instead of an account's.")
@click.option("--from", "day_from", type=int, default=None, help="First day, YYYYMMDD (UTC).")
@click.option("--to", "day_to", type=int, default=None, help="Last day, YYYYMMDD (UTC).")
@json_option
@pass_ctx
def usage(
    ctx: CliContext,
    account_id: str | None,
    key_id: str | None,
    day_from: int | None,
    day_to: int | None,
) -> None:
    """Usage statement by day and model: requests charged and their net cost."""
    if not account_id and not key_id:
        fail("give an ACCOUNT_ID or --key KEY_ID")

    async def work(db: Database) -> list[dict[str, Any]]:
        return await db.ledger.statement(
            account_id=account_id, key_id=key_id, day_from=day_from, day_to=day_to
        )

    rows = run_with_db(ctx, work)
    total = sum(r["cost"] for r in rows)
    emit(
        ctx,
        {"account_id": account_id, "key_id": key_id, "rows": rows, "total_micros": total},
        lambda: "\n".join(
            [
                f"{r['day']}  {r['model'] or '-':40} {r['requests']:>8} {format_usd(r['cost']):>14}"
                for r in rows
            ]
            + [f"total {format_usd(total)}"]
        ),
    )


@click.group("ledger")
def ledger() -> None:
    """Ledger checks."""


@ledger.command("verify")
@json_option
@pass_ctx
def verify(ctx: CliContext) -> None:
    """Re-derive every balance from the ledger; exit 1 on any mismatch."""
    checked, mismatches = run_with_db(ctx, lambda db: db.ledger.verify())
    data = {
        "accounts_checked": checked,
        "ok": not mismatches,
        "mismatches": [asdict(m) for m in mismatches],
    }
    emit(ctx, data, f"ledger verified: {checked} accounts, {len(mismatches)} mismatches")
    if mismatches:
        raise SystemExit(1)


def register(group: click.Group) -> None:
    group.add_command(credits)
    group.add_command(usage)
    group.add_command(ledger)

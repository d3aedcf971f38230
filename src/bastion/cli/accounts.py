"""``bastion accounts …``"""

from __future__ import annotations

import sys

import click

from bastion.admin.accounts import AccountAdmin
from bastion.admin.passwords import check_new_password, hash_password
from bastion.cli.context import CliContext, emit, json_option, pass_ctx, run_with_db
from bastion.core.money import format_usd
from bastion.core.records import AccountRecord
from bastion.storage.sql.credentials import SqlCredentials
from bastion.storage.sql.database import Database

ACTOR = "cli"


def account_json(account: AccountRecord) -> dict[str, object]:
    return {
        "id": account.id,
        "email": account.email,
        "phone": account.phone,
        "phone_verified": account.phone_verified,
        "tier": account.tier,
        "status": account.status,
        "role": account.role,
        "balance_micros": account.balance,
        "created_ms": account.created_ms,
    }


@click.group("accounts")
def accounts() -> None:
    """Customer accounts (operator-created accounts count as phone-verified)."""


@accounts.command("create")
@click.option("--email", required=True)
@click.option("--phone", required=True, help="In international form, e.g. +14155550123.")
@click.option("--tier", default=None, help="Tier name (default: billing.default_tier).")
@click.option("--operator", is_flag=True, help="Give the account the operator role.")
@json_option
@pass_ctx
def create(ctx: CliContext, email: str, phone: str, tier: str | None, operator: bool) -> None:
    async def work(db: Database) -> AccountRecord:
        admin = AccountAdmin(db, ctx.settings)
        return await admin.create(
            email=email,
            phone=phone,
            tier=tier,
            actor=ACTOR,
            role="operator" if operator else "customer",
        )

    account = run_with_db(ctx, work)
    emit(ctx, {"id": account.id, **account_json(account)}, f"created account {account.id}")


@accounts.command("list")
@click.option("--search", default="", help="Part of an email, id or phone number.")
@click.option("--limit", default=100, show_default=True)
@json_option
@pass_ctx
def list_(ctx: CliContext, search: str, limit: int) -> None:
    found = run_with_db(ctx, lambda db: db.accounts.search(search, limit))
    emit(
        ctx,
        [account_json(a) for a in found],
        lambda: (
            "\n".join(
                f"{a.id}  {a.email:32}  {a.tier:10}  {a.status:9}  {format_usd(a.balance)}"
                for a in found
            )
            or "no accounts"
        ),
    )


@accounts.command("show")
@click.argument("account_id")
@json_option
@pass_ctx
def show(ctx: CliContext, account_id: str) -> None:
    account = run_with_db(ctx, lambda db: AccountAdmin(db, ctx.settings).get(account_id))
    data = account_json(account)
    emit(ctx, data, lambda: "\n".join(f"{k}: {v}" for k, v in data.items()))


@accounts.command("set-tier")
@click.argument("account_id")
@click.argument("tier")
@json_option
@pass_ctx
def set_tier(ctx: CliContext, account_id: str, tier: str) -> None:
    account = run_with_db(
        ctx, lambda db: AccountAdmin(db, ctx.settings).set_tier(account_id, tier, actor=ACTOR)
    )
    emit(ctx, account_json(account), f"account {account.id} is now on tier {account.tier}")


@accounts.command("suspend")
@click.argument("account_id")
@json_option
@pass_ctx
def suspend(ctx: CliContext, account_id: str) -> None:
    account = run_with_db(
        ctx,
        lambda db: AccountAdmin(db, ctx.settings).set_status(account_id, "suspended", actor=ACTOR),
    )
    emit(ctx, account_json(account), f"account {account.id} suspended: its keys stop working")


@accounts.command("resume")
@click.argument("account_id")
@json_option
@pass_ctx
def resume(ctx: CliContext, account_id: str) -> None:
    account = run_with_db(
        ctx,
        lambda db: AccountAdmin(db, ctx.settings).set_status(account_id, "active", actor=ACTOR),
    )
    emit(ctx, account_json(account), f"account {account.id} is active again")


def _read_new_password() -> str:
    """From a hidden prompt on a terminal, else the first line of stdin; never from argv
    (argv is visible to every user of the machine and kept in shell history)."""
    if sys.stdin.isatty():
        return str(click.prompt("New password", hide_input=True, confirmation_prompt=True))
    return sys.stdin.readline().rstrip("\r\n")


@accounts.command("set-password")
@click.argument("account_id")
@json_option
@pass_ctx
def set_password(ctx: CliContext, account_id: str) -> None:
    """Set the dashboard password of an account (read from a prompt or stdin).

    Every dashboard session of the account ends.  This is how an operator account created
    with `accounts create --operator` gets its first password."""
    password = _read_new_password()

    async def work(db: Database) -> AccountRecord:
        account = await AccountAdmin(db, ctx.settings).get(account_id)
        check_new_password(
            password,
            password,
            email=account.email,
            min_length=ctx.settings.dashboard.min_password_length,
        )
        await SqlCredentials(db.engine).set_password(
            account.id, await hash_password(password), actor=ACTOR
        )
        return account

    account = run_with_db(ctx, work)
    emit(
        ctx,
        {"id": account.id, "password_set": True},
        f"password set for {account.email}; its dashboard sessions were ended",
    )


def register(group: click.Group) -> None:
    group.add_command(accounts)

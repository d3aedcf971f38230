"""``bastion keys …``"""

from __future__ import annotations

import click

from bastion.admin.keys import CreatedKey, KeyAdmin
from bastion.cli.context import CliContext, emit, fail, json_option, pass_ctx, run_with_db
from bastion.core.money import format_usd, parse_usd
from bastion.core.records import KeyRecord
from bastion.storage.sql.database import Database

ACTOR = "cli"


@click.group("keys")
def keys() -> None:
    """API keys: the secret is shown once, at creation; only its digest is stored."""


@keys.command("create")
@click.argument("account_id")
@click.option("--label", required=True, help="A name for the key, e.g. prod-api-worker.")
@json_option
@pass_ctx
def create(ctx: CliContext, account_id: str, label: str) -> None:
    created: CreatedKey = run_with_db(
        ctx, lambda db: KeyAdmin(db).create(account_id, label, actor=ACTOR)
    )
    record = created.record
    emit(
        ctx,
        {"id": record.id, "key": created.secret, "label": record.label, "account_id": account_id},
        f"created key {record.id} ({record.label})\n\n    {created.secret}\n\n"
        "This is the only time the key is shown: store it now.",
    )


def _line(k: KeyRecord) -> str:
    status = "active" if k.is_active else f"revoked ({k.revoked_reason})"
    cap = f"  cap {format_usd(k.monthly_spend_cap)}/month" if k.monthly_spend_cap else ""
    return f"{k.id}  {k.display_prefix}…  {k.label:24}  {status}{cap}"


@keys.command("list")
@click.argument("account_id")
@json_option
@pass_ctx
def list_(ctx: CliContext, account_id: str) -> None:
    found = run_with_db(ctx, lambda db: KeyAdmin(db).list(account_id))
    emit(ctx, [k.public() for k in found], lambda: "\n".join(map(_line, found)) or "no keys")


@keys.command("revoke")
@click.argument("key_id")
@click.option("--reason", default="revoked by operator", show_default=True)
@json_option
@pass_ctx
def revoke(ctx: CliContext, key_id: str, reason: str) -> None:
    record = run_with_db(ctx, lambda db: KeyAdmin(db).revoke(key_id, actor=ACTOR, reason=reason))
    emit(ctx, record.public(), f"revoked key {record.id}")


def _limit(text: str, name: str, money: bool = False) -> int | None:
    if text.lower() in ("none", "default", "off"):
        return None
    try:
        return int(parse_usd(text)) if money else int(text)
    except ValueError:
        fail(f"--{name} must be {'an amount in USD' if money else 'an integer'} or 'none'")


@keys.command("limits")
@click.argument("key_id")
@click.option(
    "--rpm", default=None, help="Requests per minute for this key, or 'none' for the tier's."
)
@click.option("--concurrency", default=None, help="Concurrent requests, or 'none' for the tier's.")
@click.option("--spend-cap", default=None, help="Monthly spend cap in USD, or 'none'.")
@json_option
@pass_ctx
def limits(
    ctx: CliContext,
    key_id: str,
    rpm: str | None,
    concurrency: str | None,
    spend_cap: str | None,
) -> None:
    """Override a key's tier limits and set its monthly spend cap."""
    if rpm is None and concurrency is None and spend_cap is None:
        fail("give at least one of --rpm, --concurrency, --spend-cap")

    changes: dict[str, int | None] = {}
    if rpm is not None:
        changes["rpm_override"] = _limit(rpm, "rpm")
    if concurrency is not None:
        changes["concurrency_override"] = _limit(concurrency, "concurrency")
    if spend_cap is not None:
        changes["monthly_spend_cap"] = _limit(spend_cap, "spend-cap", money=True)

    async def work(db: Database) -> KeyRecord:
        return await KeyAdmin(db).set_limits(key_id, changes, actor=ACTOR)

    record = run_with_db(ctx, work)
    emit(ctx, record.public(), _line(record))


def register(group: click.Group) -> None:
    group.add_command(keys)

"""``bastion catalog …``: check and show the model catalog of a configuration."""

from __future__ import annotations

import click

from bastion.cli.context import CliContext, emit, json_option, pass_ctx


@click.group("catalog")
def catalog() -> None:
    """The model catalog."""


@catalog.command("validate")
@json_option
@pass_ctx
def validate(ctx: CliContext) -> None:
    """Load and validate the configuration (exit 1 with the offending key on error)."""
    settings = ctx.settings
    emit(
        ctx,
        {"ok": True, "file": settings.file, "models": len(settings.catalog.models)},
        f"{settings.file}: valid ({len(settings.catalog.models)} models, "
        f"{len(settings.tiers)} tiers, {len(settings.upstreams)} upstreams)",
    )


@catalog.command("list")
@json_option
@pass_ctx
def list_(ctx: CliContext) -> None:
    models = ctx.settings.catalog.models
    emit(
        ctx,
        [
            {
                "id": m.id,
                "category": m.category,
                "endpoints": sorted(e.value for e in m.endpoints),
                "aliases": list(m.aliases),
                "deployments": [d.upstream + "/" + d.upstream_model for d in m.deployments],
            }
            for m in models
        ],
        lambda: "\n".join(
            f"{m.id:40} {m.category:15} {','.join(sorted(e.value for e in m.endpoints))}"
            for m in models
        ),
    )


def register(group: click.Group) -> None:
    group.add_command(catalog)

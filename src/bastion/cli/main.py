"""``bastion``: the operator command line."""

from __future__ import annotations

from typing import Any

import click

from bastion import __version__
from bastion.cli import accounts, audit, catalog, credits, keys, serve
from bastion.cli.context import CliContext, fail
from bastion.errors import ConfigError


class BastionGroup(click.Group):
    """Every command reports a bad configuration file the same way: ``error: FILE: KEY: …``
    on stderr (JSON with ``--json``) and exit status 1, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            fail(str(exc))


@click.group(cls=BastionGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    envvar="BASTION_CONFIG",
    type=click.Path(dir_okay=False),
    help="Configuration file (default: $BASTION_CONFIG, then ./bastion.toml).",
)
@click.option(
    "--data-dir",
    envvar="BASTION_DATA_DIR",
    type=click.Path(file_okay=False),
    help="Data directory for the embedded database (default: $BASTION_DATA_DIR, then .bastion).",
)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.version_option(__version__, prog_name="bastion")
@click.pass_context
def cli(ctx: click.Context, config: str | None, data_dir: str | None, as_json: bool) -> None:
    """Bastion: a self-hostable, OpenAI-compatible, metered AI API gateway."""
    ctx.obj = CliContext(config=config, data_dir=data_dir, as_json=as_json)


for module in (serve, accounts, keys, credits, catalog, audit):
    module.register(cli)


def main() -> None:
    cli(standalone_mode=True)

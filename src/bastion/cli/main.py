"""``bastion``: the operator command line."""

from __future__ import annotations

import click

from bastion import __version__
from bastion.cli import accounts, catalog, credits, keys, serve
from bastion.cli.context import CliContext
from bastion.errors import ConfigError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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


for module in (serve, accounts, keys, credits, catalog):
    module.register(cli)


def main() -> None:
    try:
        cli(standalone_mode=True)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None

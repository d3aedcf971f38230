"""What every CLI command shares: settings read once, the database opened per command,
output as text or as JSON (``--json``), operator errors as exit codes."""

from __future__ import annotations

import asyncio
import functools
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

import click
import orjson

from bastion.errors import BastionError, ConfigError, OperatorError, StoreUnavailableError
from bastion.settings import Settings, load_settings
from bastion.storage.sql.database import Database

T = TypeVar("T")


@dataclass
class CliContext:
    config: str | None
    data_dir: str | None
    as_json: bool = False
    _settings: Settings | None = field(default=None)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config, os.environ, data_dir=self.data_dir)
        return self._settings


def emit(ctx: CliContext, data: Any, text: str | Callable[[], str]) -> None:
    if ctx.as_json:
        click.echo(
            orjson.dumps(
                data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
            ).decode()
        )
    else:
        click.echo(text() if callable(text) else text)


def json_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--json`` on every command (also accepted before the command name)."""

    @click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
    @functools.wraps(command)
    def wrapper(*args: Any, as_json: bool, **kwargs: Any) -> Any:
        ctx = click.get_current_context().find_object(CliContext)
        if ctx is not None and as_json:
            ctx.as_json = True
        return command(*args, **kwargs)

    return wrapper


def run_with_db(ctx: CliContext, work: Callable[[Database], Awaitable[T]]) -> T:
    """Open the store of record (migrating an embedded database on first use), run, close."""

    async def main() -> T:
        settings = ctx.settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database.open(settings.storage)
        try:
            if settings.storage.auto_migrate:
                await db.migrate()
            result = await work(db)
        finally:
            await db.close()
        await ring_doorbell(settings)
        return result

    return run(main())


async def ring_doorbell(settings: Settings, message: str = "poll") -> None:
    """Scaled out: tell every replica to read the change feed now (revocations within
    milliseconds instead of a poll interval).  Best effort: polling covers a missed ring."""
    if not settings.storage.redis_url:
        return
    from bastion.storage.redis.admission import connect
    from bastion.storage.redis.doorbell import RedisDoorbell

    client = connect(settings.storage.redis_url, settings.storage.store_timeout_s)
    try:
        await RedisDoorbell(client, settings.storage.redis_prefix).ring(message)
    except StoreUnavailableError:
        click.echo(
            "warning: Redis did not answer; replicas will see the change when they next poll",
            err=True,
        )
    finally:
        await client.aclose(close_connection_pool=True)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coroutine)
    except (OperatorError, ConfigError) as exc:
        fail(str(exc))
    except BastionError as exc:
        fail(exc.message)


def fail(message: str, code: int = 1) -> NoReturn:
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_object(CliContext) if ctx else None
    if obj is not None and obj.as_json:
        click.echo(orjson.dumps({"error": message}).decode(), err=True)
    else:
        click.echo(f"error: {message}", err=True)
    sys.exit(code)


pass_ctx = click.make_pass_decorator(CliContext)

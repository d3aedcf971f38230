"""Reload the configuration file in a running gateway (SIGHUP, ``bastion reload``, or the
Redis doorbell so that every replica reloads together).

What reloads: the model catalog, tiers, upstreams and billing.  Listener, storage, auth, log,
dashboard, SMS and alert settings take effect at the next restart (a reload that changes
them says so).  Upstream clients whose settings changed are replaced; the old ones are closed
once every request that may still use them has had its total timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from bastion.errors import ConfigError
from bastion.settings import Settings, load_settings
from bastion.upstream.openai import OpenAIUpstream
from bastion.upstream.riva import RivaUpstream

if TYPE_CHECKING:
    from bastion.runtime import Runtime

log = logging.getLogger("bastion.reload")

RESTART_ONLY = ("listener", "storage", "auth", "log", "dashboard", "sms", "alerts", "admin")


def merge(current: Settings, fresh: Settings) -> tuple[Settings, list[str]]:
    """The fresh settings with restart-only sections kept; and which of those changed."""
    pending = [name for name in RESTART_ONLY if getattr(fresh, name) != getattr(current, name)]
    kept = replace(
        fresh,
        data_dir=current.data_dir,
        **{name: getattr(current, name) for name in RESTART_ONLY},
    )
    return kept, pending


async def reload(runtime: Runtime) -> list[str]:
    """Re-read the file and apply it; returns the restart-only sections that changed.
    Raises ConfigError (and changes nothing) if the new file is invalid."""
    current = runtime.settings
    fresh = load_settings(current.file, data_dir=str(current.data_dir))
    settings, pending = merge(current, fresh)
    retired: list[OpenAIUpstream | RivaUpstream] = []
    for name, upstream in settings.upstreams.items():
        if upstream.kind == "openai":
            existing = runtime.upstreams.get(name)
            if existing is None or existing.settings != upstream:
                runtime.upstreams[name] = OpenAIUpstream(upstream)
                if existing is not None:
                    retired.append(existing)
        else:
            riva = runtime.riva_upstreams.get(name)
            if riva is None or riva.settings != upstream:
                runtime.riva_upstreams[name] = RivaUpstream(upstream)
                if riva is not None:
                    retired.append(riva)
    retired.extend(
        runtime.upstreams.pop(name) for name in set(runtime.upstreams) - set(settings.upstreams)
    )
    retired.extend(
        runtime.riva_upstreams.pop(name)
        for name in set(runtime.riva_upstreams) - set(settings.upstreams)
    )
    runtime.apply_settings(settings)
    if retired:
        grace = max((u.settings.timeouts.total_s for u in retired), default=0.0)
        runtime.retire(_close_later(retired, grace))
    for name in pending:
        log.warning("configuration section changed; restart to apply", extra={"section": name})
    log.info(
        "configuration reloaded",
        extra={"models": len(settings.catalog.models), "upstreams": len(settings.upstreams)},
    )
    return pending


async def _close_later(clients: list[OpenAIUpstream | RivaUpstream], grace_s: float) -> None:
    try:
        await asyncio.sleep(grace_s)
    finally:  # at shutdown too: never leave a pool open
        for client in clients:
            with contextlib.suppress(Exception):
                await client.close()


async def reload_logged(runtime: Runtime) -> None:
    try:
        await reload(runtime)
    except ConfigError as exc:
        log.error("configuration not reloaded: %s", exc)

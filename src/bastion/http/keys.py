"""Typed keys for what the aiohttp application carries."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from bastion.gateway.sink import Exchange

if TYPE_CHECKING:
    from bastion.runtime import Runtime

RUNTIME: web.AppKey[Runtime] = web.AppKey("runtime")
EXCHANGE: web.RequestKey[Exchange] = web.RequestKey("exchange")
PREPARED: web.RequestKey[web.StreamResponse] = web.RequestKey("prepared")

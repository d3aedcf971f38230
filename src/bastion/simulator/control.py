"""Run-time switches, request journal and counters, and the /_simulator/* routes over them.

The control routes need no key even when `api_key` is set: they are for the test harness
on loopback, and the journal must stay readable when a test sends a wrong key on purpose.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

import orjson
from aiohttp import web

from bastion.simulator.errors import invalid
from bastion.simulator.options import SimulatorOptions, validated
from bastion.simulator.replies import error_response, json_response

JOURNAL_SIZE = 200


@dataclass(slots=True)
class Stats:
    requests_total: int = 0
    streams_started: int = 0
    streams_completed: int = 0
    streams_cancelled: int = 0  # the client went away mid-stream
    in_flight: int = 0

    def clear(self) -> None:
        """Zero the history; `in_flight` is live state, not history, so it is kept."""
        self.requests_total = 0
        self.streams_started = 0
        self.streams_completed = 0
        self.streams_cancelled = 0


class Control:
    """State shared by every request of one simulator app."""

    def __init__(self, options: SimulatorOptions) -> None:
        self.options = options  # the caller's object: mutating it switches faults too
        self.defaults = options.copy()
        self.journal: deque[dict[str, Any]] = deque(maxlen=JOURNAL_SIZE)
        self.stats = Stats()

    def pick_fault(self) -> str | None:
        fault = self.options.fault
        if fault is None:
            return None
        rate = self.options.fault_rate
        return fault if rate >= 1.0 or random.random() < rate else None

    def reset(self) -> None:
        """Back to the options given at start; journal and counters cleared."""
        self.options.assign(self.defaults)
        self.journal.clear()
        self.stats.clear()

    # -- routes ---------------------------------------------------------------------------

    async def get_options(self, request: web.Request) -> web.Response:
        return json_response(self.options.to_dict())

    async def set_options(self, request: web.Request) -> web.Response:
        try:
            changes = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return error_response(invalid("body must be a JSON object of option fields"))
        if not isinstance(changes, dict):
            return error_response(invalid("body must be a JSON object of option fields"))
        try:
            updated = validated(self.options, changes)
        except ValueError as exc:
            return error_response(invalid(str(exc)))
        self.options.assign(updated)
        return json_response(self.options.to_dict())

    async def reset_route(self, request: web.Request) -> web.Response:
        self.reset()
        return json_response(self.options.to_dict())

    async def requests(self, request: web.Request) -> web.Response:
        # Header names are multidict's `istr`, a str subclass orjson takes only with this flag.
        return json_response(list(self.journal), options=orjson.OPT_NON_STR_KEYS)

    async def stats_route(self, request: web.Request) -> web.Response:
        return json_response(asdict(self.stats))

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/_simulator/control", self.get_options)
        app.router.add_post("/_simulator/control", self.set_options)
        app.router.add_post("/_simulator/reset", self.reset_route)
        app.router.add_get("/_simulator/requests", self.requests)
        app.router.add_get("/_simulator/stats", self.stats_route)

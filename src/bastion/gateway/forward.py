"""Pick a deployment and reach it: weighted choice, failover before the first byte, circuits.

Failover happens only while nothing has been sent to the client: on a connection failure, a
first-byte timeout, a 5xx status or a reply of the wrong content type.  A 4xx reply is the
request's fault, not the deployment's: it is returned as is, without failover.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Collection, Mapping
from typing import Any

from bastion.core.catalog import Deployment, Model
from bastion.core.clock import Clock
from bastion.upstream.circuit import CircuitBook
from bastion.upstream.openai import Deadline, OpenAIUpstream, UpstreamAttemptError, UpstreamReply

BodyFactory = Callable[[Deployment], tuple[Any, str | None]]
"""Builds the upstream body for one deployment (fresh per attempt: a stream can't be resent)."""


def weighted_order(deployments: tuple[Deployment, ...], rng: random.Random) -> list[Deployment]:
    """A random order in which heavier deployments tend to come first (weighted shuffle)."""
    if len(deployments) == 1:  # the common case: nothing to shuffle
        return list(deployments) if deployments[0].weight > 0 else []
    pool = [d for d in deployments if d.weight > 0]
    if len(pool) == 1:
        return pool
    keyed = [(rng.random() ** (1.0 / d.weight), d) for d in pool]
    keyed.sort(key=lambda pair: pair[0], reverse=True)
    return [d for _, d in keyed]


class Forwarder:
    def __init__(
        self,
        upstreams: Mapping[str, OpenAIUpstream],
        circuits: CircuitBook,
        clock: Clock,
        rng: random.Random | None = None,
    ) -> None:
        self._upstreams = upstreams
        self._circuits = circuits
        self._clock = clock
        self._rng = rng or random.Random()

    def upstream(self, name: str) -> OpenAIUpstream:
        return self._upstreams[name]

    def circuit_name(self, deployment: Deployment) -> str:
        return f"{deployment.upstream}/{deployment.upstream_model}"

    async def send(
        self,
        model: Model,
        path: str,
        build: BodyFactory,
        deadline: Deadline,
        accept: Collection[str],
    ) -> tuple[Deployment, UpstreamReply]:
        """The first deployment that answers with a usable reply, and that reply."""
        last: UpstreamAttemptError | None = None
        tried = 0
        for deployment in weighted_order(model.deployments, self._rng):
            upstream = self._upstreams[deployment.upstream]
            circuit = self._circuits.get(
                self.circuit_name(deployment),
                upstream.settings.circuit_failures,
                upstream.settings.circuit_open_s,
            )
            if not circuit.may_try(self._clock.now_ms()):
                continue
            tried += 1
            data, content_type = build(deployment)
            try:
                reply = await upstream.send(
                    path, data, content_type=content_type, deadline=deadline
                )
            except UpstreamAttemptError as failure:
                circuit.failure(self._clock.now_ms())
                last = failure
                if failure.retryable:
                    continue
                raise
            except asyncio.CancelledError:
                # the client left: this attempt proves nothing either way, so a half-open
                # circuit's single probe must not stay claimed forever
                circuit.abandon()
                raise
            if reply.status >= 500 or (reply.status < 300 and reply.content_type not in accept):
                circuit.failure(self._clock.now_ms())
                reply.close()
                last = UpstreamAttemptError(
                    f"the upstream answered HTTP {reply.status}"
                    if reply.status >= 500
                    else f"the upstream answered with unexpected content type {reply.content_type}",
                    retryable=True,
                    status=reply.status,
                )
                continue
            if 300 <= reply.status < 400:
                circuit.failure(self._clock.now_ms())
                reply.close()
                last = UpstreamAttemptError(
                    "the upstream answered with a redirect, which Bastion never follows",
                    retryable=True,
                    status=reply.status,
                )
                continue
            circuit.success()
            return deployment, reply
        if last is None:
            raise UpstreamAttemptError(
                "every deployment of this model is failing; retry shortly", retryable=False
            )
        if tried > 1:
            last = UpstreamAttemptError(
                f"{last.reason} (tried {tried} deployments)",
                retryable=False,
                status=last.upstream_status,
            )
        raise last

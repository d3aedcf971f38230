"""Reach a Riva deployment of a text-to-speech model: weighted choice, failover, circuits.

The same rules as :mod:`bastion.gateway.forward` for HTTP upstreams: deployments are tried in
a weighted random order, a deployment whose circuit is open is skipped, and a failure moves on
to the next deployment only while nothing has been returned (always true here: ``Synthesize``
answers with all the audio at once).  A rejection of the request itself (bad voice, language
or rate) is not retried and does not count against the deployment's health.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping

from bastion.core.catalog import Deployment, Model
from bastion.core.clock import Clock
from bastion.gateway.forward import weighted_order
from bastion.upstream.circuit import CircuitBook
from bastion.upstream.openai import Deadline, UpstreamAttemptError
from bastion.upstream.riva import RivaRejectedError, RivaUpstream, SpeechRequest


class Synthesizer:
    def __init__(
        self,
        upstreams: Mapping[str, RivaUpstream],
        circuits: CircuitBook,
        clock: Clock,
        rng: random.Random | None = None,
    ) -> None:
        self._upstreams = upstreams
        self._circuits = circuits
        self._clock = clock
        self._rng = rng or random.Random()

    def total_timeout(self, model: Model) -> float:
        return max(self._upstreams[d.upstream].settings.timeouts.total_s for d in model.deployments)

    async def synthesize(self, model: Model, request: SpeechRequest) -> tuple[Deployment, bytes]:
        """The audio from the first deployment that produces it, and that deployment."""
        deadline = Deadline.after(self.total_timeout(model))
        last: UpstreamAttemptError | None = None
        tried = 0
        for deployment in weighted_order(model.deployments, self._rng):
            upstream = self._upstreams[deployment.upstream]
            circuit = self._circuits.get(
                f"{deployment.upstream}/{deployment.upstream_model}",
                upstream.settings.circuit_failures,
                upstream.settings.circuit_open_s,
            )
            if not circuit.may_try(self._clock.now_ms()):
                continue
            tried += 1
            try:
                audio = await upstream.synthesize(request, deadline)
            except RivaRejectedError:
                circuit.success()  # the server answered: it is healthy, the request is not
                raise
            except UpstreamAttemptError as failure:
                circuit.failure(self._clock.now_ms())
                last = failure
                if failure.retryable:
                    continue
                raise
            except asyncio.CancelledError:
                # The client left mid-attempt: a half-open probe must not stay claimed, or
                # the deployment would never be tried again.  Unproven, it counts as failed.
                if circuit.probing:
                    circuit.failure(self._clock.now_ms())
                raise
            circuit.success()
            return deployment, audio
        if last is None:
            raise UpstreamAttemptError(
                "every deployment of this model is failing; retry shortly", retryable=False
            )
        if tried > 1:
            last = UpstreamAttemptError(
                f"{last.reason} (tried {tried} deployments)", retryable=False
            )
        raise last

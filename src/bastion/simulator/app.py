"""The upstream simulator: an OpenAI-compatible model server that runs no model.

`bastion simulate` stands where vLLM (or any OpenAI-compatible server) stands in
production, for the quickstart, the test suite and the benchmarks. It answers
/v1/models, /v1/chat/completions, /v1/completions, /v1/responses (stateless),
/v1/embeddings, /v1/images/generations and /v1/audio/transcriptions with valid OpenAI
objects, for any model id, and says everywhere that it is simulated: text starts with
"[simulated]", `system_fingerprint` and `owned_by` are "bastion-simulator", Responses carry
`metadata: {"simulated": "true"}`, and every HTTP response has `X-Bastion-Simulator: 1`.

Text is deterministic pseudo-words seeded from the prompt; usage is a rough, reproducible
count (a quarter of the prompt's characters plus 3 per message, never more than the request
body's bytes; one emitted word piece per completion token). Streams are paced at
`tokens_per_second` after `first_token_ms`.

Faults (5xx, reset, slow_first_byte, stall, wrong_content_type) are injected on POST /v1/*
with probability `fault_rate`, and can be switched at run time. The control routes, for
tests and benchmarks, need no key:

    GET  /_simulator/control    current options        POST /_simulator/control  change some
    POST /_simulator/reset      back to the start options, journal and counters cleared
    GET  /_simulator/requests   the last 200 /v1 requests received (newest last)
    GET  /_simulator/stats      requests_total, streams_started/completed/cancelled, in_flight
    GET  /_simulator/images/{id}.png   images generated with response_format "url"
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from bastion.simulator import chat, completions, embeddings, models, responses, transcriptions
from bastion.simulator.call import MAX_JSON_BODY, endpoint
from bastion.simulator.control import Control
from bastion.simulator.errors import SimulatorError
from bastion.simulator.images import ImageStore, generate
from bastion.simulator.options import SimulatorOptions, validated
from bastion.simulator.replies import error_response

CONTROL_KEY = web.AppKey("control", Control)
# Streams still open at shutdown (a stalled one never ends) get this long to finish.
SHUTDOWN_TIMEOUT_S = 1.0


async def _label(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["X-Bastion-Simulator"] = "1"


async def _not_found(request: web.Request) -> web.StreamResponse:
    return error_response(
        SimulatorError(
            f"no route for {request.method} {request.path} on the simulated upstream",
            status=404,
            code="not_found",
        )
    )


def create_app(options: SimulatorOptions) -> web.Application:
    """The simulator app; `options` stays live: changing its fields changes behaviour."""
    validated(SimulatorOptions(), options.to_dict())  # fail at start on a bad value
    control = Control(options)
    images = ImageStore()
    app = web.Application(client_max_size=MAX_JSON_BODY)
    app[CONTROL_KEY] = control
    app.on_response_prepare.append(_label)

    router = app.router
    router.add_get("/v1/models", endpoint(control, models.list_models, json_body=False))
    router.add_get("/v1/models/{model:.+}", endpoint(control, models.retrieve, json_body=False))
    router.add_post("/v1/chat/completions", endpoint(control, chat.create))
    router.add_post("/v1/completions", endpoint(control, completions.create))
    router.add_post("/v1/responses", endpoint(control, responses.create))
    router.add_post("/v1/embeddings", endpoint(control, embeddings.create))
    router.add_post("/v1/images/generations", endpoint(control, generate(images)))
    router.add_post(
        "/v1/audio/transcriptions",
        endpoint(control, transcriptions.create, json_body=False),
    )
    router.add_get("/_simulator/images/{image_id}.png", images.serve)
    control.add_routes(app)
    router.add_route("*", "/{tail:.*}", _not_found)
    return app


async def serve(host: str, port: int, options: SimulatorOptions) -> None:
    """Serve until cancelled; prints nothing (the caller reports the address)."""
    runner = web.AppRunner(
        create_app(options),
        access_log=None,  # the hot path stays cheap; the journal is the record
        handler_cancellation=True,  # a client that leaves cancels its stream at once
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        await asyncio.Event().wait()  # until cancelled
    finally:
        await runner.cleanup()

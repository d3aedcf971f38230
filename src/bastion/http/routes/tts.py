"""``POST /api/v1/tts/text_to_audio``: a JSON body in, raw audio bytes out."""

from __future__ import annotations

import contextlib

from aiohttp import web

from bastion.core.catalog import Endpoint
from bastion.gateway.sink import ClientGoneError, Exchange
from bastion.gateway.tts import handle_tts
from bastion.gateway.validation import parse_object
from bastion.http.body import read_capped
from bastion.http.keys import EXCHANGE, RUNTIME
from bastion.http.sink import AiohttpSink


async def text_to_audio(request: web.Request) -> web.StreamResponse:
    runtime = request.app[RUNTIME]
    exchange: Exchange = request[EXCHANGE]
    principal = await runtime.authenticator.authenticate(request.headers.get("Authorization"))
    exchange.info["account_id"] = principal.account.id
    exchange.info["key_id"] = principal.key.id
    exchange.info["endpoint"] = Endpoint.TTS.value
    body = await read_capped(request, runtime.settings.listener.max_json_body_bytes)
    payload = parse_object(body)
    sink = AiohttpSink(request)
    with contextlib.suppress(ClientGoneError):
        await handle_tts(
            runtime.gateway,
            runtime.synthesizer,
            exchange,
            principal,
            payload,
            request.headers.get("Accept"),
            sink,
        )
    assert sink.response is not None
    return sink.response


def add_routes(app: web.Application) -> None:
    app.router.add_post(Endpoint.TTS.path, text_to_audio)

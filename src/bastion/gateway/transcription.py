"""``POST /v1/audio/transcriptions``: priced by the audio's duration, measured by Bastion."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import IO, Any

import aiohttp

from bastion.core.calendar import now_ms
from bastion.core.catalog import Deployment, Endpoint
from bastion.core.records import Principal
from bastion.core.usage import Usage
from bastion.errors import BastionError, InvalidRequestError
from bastion.gateway.audio import SUPPORTED, duration_ms
from bastion.gateway.proxy import Gateway, Outcome
from bastion.gateway.sink import Exchange, Sink
from bastion.upstream.openai import Deadline

ANSWER_TYPES = frozenset(
    {"application/json", "text/plain", "text/vtt", "application/x-subrip", "text/srt"}
)


@dataclass(slots=True)
class Upload:
    """A received multipart form: its fields in order, and the spooled audio file."""

    fields: list[tuple[str, str]] = field(default_factory=list)
    file: IO[bytes] | None = None
    filename: str = "audio"
    file_type: str = "application/octet-stream"
    file_bytes: int = 0

    def value(self, name: str) -> str | None:
        for key, value in self.fields:
            if key == name:
                return value
        return None

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


async def handle_transcription(
    gateway: Gateway, exchange: Exchange, principal: Principal, upload: Upload, sink: Sink
) -> None:
    name = upload.value("model")
    if not name:
        raise InvalidRequestError("Missing required parameter: 'model'.")
    if upload.file is None:
        raise InvalidRequestError("Missing required parameter: 'file'.")
    if upload.file_bytes == 0:
        raise InvalidRequestError("The uploaded file is empty.")
    model = gateway.catalog.resolve(name, Endpoint.TRANSCRIPTIONS, gateway.tier_of(principal))
    exchange.info["model"] = model.id
    file = upload.file
    measured = await asyncio.to_thread(duration_ms, file)
    if measured is None:
        raise InvalidRequestError(
            f"Could not read the duration of the uploaded audio; supported formats: {SUPPORTED}."
        )
    usage = Usage(audio_ms=measured, source="gateway")
    ticket = await gateway.admit(exchange, principal, model, usage)
    exchange.headers.update(ticket.headers)
    outcome = Outcome(ticket, model, Endpoint.TRANSCRIPTIONS, now_ms(), exchange=exchange)

    def build(deployment: Deployment) -> tuple[Any, str | None]:
        form = aiohttp.FormData(quote_fields=False)
        for key, value in upload.fields:
            form.add_field(key, deployment.upstream_model if key == "model" else value)
        file.seek(0)
        form.add_field("file", file, filename=upload.filename, content_type=upload.file_type)
        body = form()  # a multipart writer: it streams the file, its boundary in its type
        return body, body.content_type

    try:
        deadline = Deadline.after(gateway.total_timeout(model))
        _deployment, reply = await gateway.send_upstream(
            model, Endpoint.TRANSCRIPTIONS, build, deadline, ANSWER_TYPES
        )
        try:
            answer = await reply.body()
            reply.release()
        finally:
            reply.close()
        await gateway.answer(outcome, usage, sink, answer, reply.content_type, exchange.headers)
    except BastionError as error:
        outcome.status = error.status
        raise
    finally:
        await gateway.finish(outcome)

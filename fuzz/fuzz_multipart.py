"""Fuzz the transcription upload reader (``http/routes/audio.read_upload``): aiohttp's
``MultipartReader`` over arbitrary bytes and ``Content-Type`` boundaries, under the caps.

Property: every body is either read into an ``Upload`` within its caps or refused with the
contract's ``InvalidRequestError`` (400) or ``RequestTooLargeError`` (413) — never another
exception (which the gateway would answer with a 500).
"""

from __future__ import annotations

import asyncio
from unittest import mock

import atheris

with atheris.instrument_imports(include=["bastion"]):
    from aiohttp import streams, test_utils

    from bastion.errors import InvalidRequestError, RequestTooLargeError
    from bastion.http.routes.audio import read_upload
    from bastion.observability.logging import ignore_client_warnings

from common import main

FILE_LIMIT = 4096
ignore_client_warnings()  # as the configured gateway does: a line per malformed part otherwise
LOOP = asyncio.new_event_loop()


async def _read(content_type: str, body: bytes) -> None:
    protocol = mock.Mock(_reading_paused=False)
    payload = streams.StreamReader(protocol, 2**16, loop=LOOP)
    payload.feed_data(body)
    payload.feed_eof()
    request = test_utils.make_mocked_request(
        "POST",
        "/v1/audio/transcriptions",
        headers={"Content-Type": content_type},
        payload=payload,
        loop=LOOP,
    )
    try:
        upload = await read_upload(request, FILE_LIMIT)
    except (InvalidRequestError, RequestTooLargeError):
        return
    try:
        assert upload.file_bytes <= FILE_LIMIT
        for name, value in upload.fields:
            assert isinstance(name, str)
            assert isinstance(value, str)
    finally:
        upload.close()


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    if fdp.ConsumeBool():
        boundary = "b0und4ry"
        content_type = f"multipart/form-data; boundary={boundary}"
    else:
        content_type = "multipart/form-data" + fdp.ConsumeUnicodeNoSurrogates(40)
    body = fdp.ConsumeBytes(fdp.remaining_bytes())
    LOOP.run_until_complete(_read(content_type, body))


if __name__ == "__main__":
    main(test_one_input)

"""``POST /v1/audio/transcriptions``: a multipart upload streamed to a spool file under a cap.

The cap counts bytes as they arrive (chunked uploads included): past it the request is
answered 413 at once; nothing was sent upstream and at most one chunk is held in memory.
Small files stay in memory, larger ones spill to a temporary file on disk.
"""

from __future__ import annotations

import tempfile

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from bastion.errors import ClientError, InvalidRequestError
from bastion.gateway.sink import ClientGoneError, Exchange
from bastion.gateway.transcription import Upload, handle_transcription
from bastion.http.body import check_announced, too_large
from bastion.http.keys import EXCHANGE, RUNTIME
from bastion.http.sink import AiohttpSink

FIELD_LIMIT = 64 * 1024
# OpenAI's transcription form has about ten fields (a few repeated as ``name[]``); without a
# cap, one upload of millions of empty parts held that many strings in memory.
FIELD_COUNT_LIMIT = 100
FORM_OVERHEAD = 1024 * 1024
SPOOL_IN_MEMORY = 1024 * 1024
CHUNK = 64 * 1024


async def read_upload(request: web.Request, file_limit: int) -> Upload:
    if not request.content_type.startswith("multipart/form-data"):
        raise InvalidRequestError(
            "This endpoint takes multipart/form-data with a 'file' and a 'model' field."
        )
    total_limit = file_limit + FORM_OVERHEAD
    upload = Upload()
    try:
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader):
                raise InvalidRequestError("Nested multipart bodies are not supported.")
            name = part.name or ""
            if part.filename is not None or name == "file":
                if upload.file is not None:
                    raise InvalidRequestError("Only one 'file' may be uploaded.")
                upload.file = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115
                upload.filename = part.filename or "audio"
                upload.file_type = part.headers.get("Content-Type", "application/octet-stream")
                while chunk := await part.read_chunk(CHUNK):
                    upload.file_bytes += len(chunk)
                    if upload.file_bytes > file_limit or request.content.total_bytes > total_limit:
                        raise too_large(file_limit)
                    upload.file.write(chunk)
            else:
                if len(upload.fields) >= FIELD_COUNT_LIMIT:
                    raise InvalidRequestError(
                        f"The form has more than {FIELD_COUNT_LIMIT} fields besides 'file'."
                    )
                data = b""
                while chunk := await part.read_chunk(CHUNK):
                    data += chunk
                    if len(data) > FIELD_LIMIT:
                        raise InvalidRequestError(f"The form field '{name[:64]}' is too long.")
                try:
                    upload.fields.append((name, data.decode("utf-8")))
                except UnicodeDecodeError:
                    raise InvalidRequestError(
                        f"The form field '{name[:64]}' is not UTF-8 text."
                    ) from None
            if request.content.total_bytes > total_limit:
                raise too_large(file_limit)
    except (ValueError, AssertionError, HttpProcessingError) as exc:
        # HttpProcessingError: a part's headers are not valid HTTP (found by Schemathesis)
        upload.close()
        reason = exc.message if isinstance(exc, HttpProcessingError) else str(exc)
        raise InvalidRequestError(
            f"The multipart body is malformed: {reason.splitlines()[0][:200] if reason else ''}"
        ) from None
    except BaseException:
        upload.close()
        raise
    return upload


async def transcriptions(request: web.Request) -> web.StreamResponse:
    runtime = request.app[RUNTIME]
    exchange: Exchange = request[EXCHANGE]
    principal = await runtime.authenticator.authenticate(request.headers.get("Authorization"))
    exchange.info["account_id"] = principal.account.id
    exchange.info["key_id"] = principal.key.id
    exchange.info["endpoint"] = "transcriptions"
    file_limit = runtime.settings.listener.max_upload_bytes
    sink = AiohttpSink(request)
    try:
        check_announced(request, file_limit + FORM_OVERHEAD)
        upload = await read_upload(request, file_limit)
        try:
            await handle_transcription(runtime.gateway, exchange, principal, upload, sink)
        except ClientGoneError:
            pass
        finally:
            upload.close()
    except ClientError as error:
        if "x-ratelimit-limit-requests" not in error.headers():
            await runtime.gateway.report_rate(exchange, principal)
        raise
    assert sink.response is not None
    return sink.response


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/audio/transcriptions", transcriptions)

"""The ``nvidia.riva.tts.RivaSpeechSynthesis`` service, built on the stubs that
``nvidia-riva-client`` ships: ``Synthesize`` (all audio in one reply), ``SynthesizeOnline``
(the same audio in chunks) and ``GetRivaSynthesisConfig`` (the voices of the four default
languages).  Models are labelled ``bastion-simulator-…`` and carry ``simulated: true``.

Like Riva, it refuses an unknown language or voice, an empty text, an unknown encoding or a
rate Opus cannot take with INVALID_ARGUMENT.  Its error details carry a marker the gateway
must never pass on to its clients.
"""

from __future__ import annotations

import asyncio
import hmac
import random
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import grpc
from riva.client.proto import riva_tts_pb2, riva_tts_pb2_grpc

from bastion.simulator.faults import INTERNAL_DETAIL
from bastion.simulator.riva.encode import ENCODINGS, OGGOPUS, OPUS_RATES, encode
from bastion.simulator.riva.options import RivaOptions
from bastion.simulator.riva.speech import speak
from bastion.simulator.riva.voices import LANGUAGES, NATIVE_RATE_HZ, SUBVOICES, voices_of

JOURNAL_SIZE = 200
MAX_RATE_HZ = 192_000
ONLINE_CHUNK_BYTES = 32 * 1024

Journal = deque[dict[str, Any]]


class RefusedError(Exception):
    """A request Riva would refuse: its status and a short description."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


def _check(request: riva_tts_pb2.SynthesizeSpeechRequest, options: RivaOptions) -> None:
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    if not request.text.strip():
        raise RefusedError(invalid, "text is empty")
    if request.encoding not in ENCODINGS:
        raise RefusedError(invalid, f"unsupported encoding {request.encoding}")
    if not 0 < request.sample_rate_hz <= MAX_RATE_HZ:
        raise RefusedError(invalid, f"unsupported sample rate {request.sample_rate_hz}")
    if request.encoding == OGGOPUS and request.sample_rate_hz not in OPUS_RATES:
        raise RefusedError(invalid, f"Opus cannot encode at {request.sample_rate_hz} Hz")
    if not request.voice_name:
        raise RefusedError(invalid, "voice_name is empty")
    if options.strict_voices:
        if request.language_code not in LANGUAGES:
            raise RefusedError(invalid, f"language {request.language_code[:32]!r} is not served")
        if request.voice_name not in voices_of(request.language_code):
            raise RefusedError(
                invalid,
                f"voice {request.voice_name[:64]!r} is not available for {request.language_code}",
            )


class RivaService(riva_tts_pb2_grpc.RivaSpeechSynthesisServicer):  # type: ignore[misc]
    def __init__(self, options: RivaOptions, journal: Journal) -> None:
        self.options = options
        self.journal = journal

    def _record(
        self,
        method: str,
        request: riva_tts_pb2.SynthesizeSpeechRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> dict[str, Any]:
        metadata = dict(context.invocation_metadata() or ())
        entry: dict[str, Any] = {
            "method": method,
            "language_code": request.language_code,
            "voice_name": request.voice_name,
            "encoding": request.encoding,
            "sample_rate_hz": request.sample_rate_hz,
            "characters": len(request.text),
            "metadata_keys": sorted(k for k in metadata if not k.startswith(("grpc-", ":"))),
            "status": "PENDING",
        }
        self.journal.append(entry)
        return entry

    async def _admit(
        self, context: grpc.aio.ServicerContext[Any, Any], entry: dict[str, Any]
    ) -> None:
        """Authentication, then the injected fault (if this call draws it)."""
        options = self.options
        if options.api_key is not None:
            metadata = dict(context.invocation_metadata() or ())
            given = str(metadata.get("authorization", ""))
            if not hmac.compare_digest(given.encode(), f"Bearer {options.api_key}".encode()):
                raise RefusedError(
                    grpc.StatusCode.UNAUTHENTICATED, "missing or wrong authorization"
                )
        if options.fault is None or random.random() >= options.fault_rate:
            return
        if options.fault == "stall":
            entry["status"] = "STALLED"
            await asyncio.Event().wait()  # until the caller's deadline cancels this call
        raise RefusedError(options.status(), "simulated upstream failure")

    async def _audio(
        self, request: riva_tts_pb2.SynthesizeSpeechRequest, entry: dict[str, Any]
    ) -> bytes:
        _check(request, self.options)
        rate = request.sample_rate_hz
        samples = await speak(
            request.text, request.language_code, request.voice_name, rate, self.options.voice
        )
        audio = await asyncio.to_thread(encode, samples, request.encoding, rate)
        entry["frames"] = len(samples)
        entry["bytes"] = len(audio)
        return audio

    async def _fail(
        self,
        context: grpc.aio.ServicerContext[Any, Any],
        entry: dict[str, Any],
        refused: RefusedError,
    ) -> None:
        entry["status"] = refused.code.name
        await context.abort(refused.code, f"simulated: {refused.details} [{INTERNAL_DETAIL}]")

    async def Synthesize(  # noqa: N802 (the gRPC method's name)
        self,
        request: riva_tts_pb2.SynthesizeSpeechRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> riva_tts_pb2.SynthesizeSpeechResponse:
        entry = self._record("Synthesize", request, context)
        try:
            await self._admit(context, entry)
            audio = await self._audio(request, entry)
        except RefusedError as refused:
            await self._fail(context, entry, refused)
            raise  # abort raised already; this keeps type checkers sure nothing returns
        entry["status"] = "OK"
        return riva_tts_pb2.SynthesizeSpeechResponse(audio=audio)

    async def SynthesizeOnline(  # noqa: N802 (the gRPC method's name)
        self,
        request_iterator: AsyncIterator[riva_tts_pb2.SynthesizeSpeechRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[riva_tts_pb2.SynthesizeSpeechResponse]:
        request = None
        async for first in request_iterator:
            request = first
            break
        if request is None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "no request was sent")
            return
        entry = self._record("SynthesizeOnline", request, context)
        try:
            await self._admit(context, entry)
            audio = await self._audio(request, entry)
        except RefusedError as refused:
            await self._fail(context, entry, refused)
            return
        for start in range(0, len(audio), ONLINE_CHUNK_BYTES):
            yield riva_tts_pb2.SynthesizeSpeechResponse(
                audio=audio[start : start + ONLINE_CHUNK_BYTES]
            )
        entry["status"] = "OK"

    async def GetRivaSynthesisConfig(  # noqa: N802 (the gRPC method's name)
        self,
        request: riva_tts_pb2.RivaSynthesisConfigRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> riva_tts_pb2.RivaSynthesisConfigResponse:
        response = riva_tts_pb2.RivaSynthesisConfigResponse()
        for language in LANGUAGES.values():
            name = f"bastion-simulator-tts-{language.code.lower()}"
            if request.model_name and request.model_name != name:
                continue
            config = response.model_config.add()
            config.model_name = name
            config.parameters.update(
                {
                    "language_code": language.code,
                    "voice_name": f"{language.prefix}.{SUBVOICES[0]}",
                    "subvoices": ",".join(f"{sub}:{i}" for i, sub in enumerate(SUBVOICES)),
                    "sample_rate": str(NATIVE_RATE_HZ),
                    "type": "offline",
                    "simulated": "true",
                }
            )
        return response

"""gRPC client for NVIDIA Riva text to speech (``RivaSpeechSynthesis.Synthesize``).

It knows nothing about keys, limits or money.  It holds one channel per upstream (plaintext
for ``grpc://``, TLS for ``grpcs://`` with an optional private CA), sends the operator's
metadata (for example ``authorization`` for hosted NIM endpoints) with every call, and bounds
each attempt by the upstream's connect and first-byte timeouts within the request's total
deadline.  A unary ``Synthesize`` returns all of the audio at once, so every failure happens
before any audio exists: the caller may try another deployment.

gRPC statuses become :class:`UpstreamAttemptError` with a short message built here; the
upstream's free-text details are never passed on (they may echo the text or reveal internals).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import grpc
from riva.client.proto import riva_tts_pb2, riva_tts_pb2_grpc

from bastion.errors import ConfigError
from bastion.settings import UpstreamSettings
from bastion.upstream.openai import Deadline, UpstreamAttemptError

DEFAULT_PORTS = {"grpc": 50051, "grpcs": 443}
"""Riva's own default port in plaintext; 443 for TLS endpoints such as hosted NIM."""

MAX_AUDIO_BYTES = 256 * 1024 * 1024
"""gRPC refuses messages over 4 MiB by default; long text at 48 kHz is far larger."""

CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.max_receive_message_length", MAX_AUDIO_BYTES),
    ("grpc.primary_user_agent", "bastion"),
    # gRPC's default reconnect backoff grows to 120 s: far too long to notice a restarted
    # server.  The circuit breaker, not the channel, decides how often a failing one is tried.
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 5000),
)

_REJECTIONS = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.FAILED_PRECONDITION,
    }
)
"""Statuses that blame the request (voice, language, encoding), not the server: another
deployment would refuse it too, so they are not retried and do not open a circuit."""

_REASONS = {
    grpc.StatusCode.UNAVAILABLE: "the Riva server is unreachable",
    grpc.StatusCode.DEADLINE_EXCEEDED: "the Riva server did not answer in time",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "the Riva server is overloaded",
    grpc.StatusCode.UNAUTHENTICATED: "the Riva server refused Bastion's credentials",
    grpc.StatusCode.PERMISSION_DENIED: "the Riva server refused Bastion's credentials",
    grpc.StatusCode.UNIMPLEMENTED: "the Riva server does not offer text to speech",
}


class RivaRejectedError(UpstreamAttemptError):
    """The Riva server refused the request itself (voice, language, encoding or rate)."""

    def __init__(self, reason: str, status_name: str) -> None:
        super().__init__(reason, retryable=False)
        self.status_name = status_name


@dataclass(frozen=True, slots=True)
class SpeechRequest:
    """The fields of Riva's ``SynthesizeSpeechRequest`` that Bastion forwards."""

    text: str
    language_code: str
    encoding: int
    sample_rate_hz: int
    voice_name: str


def target_of(base_url: str) -> tuple[str, bool]:
    """``grpc://host[:port]`` → (``host:port``, uses TLS)."""
    parts = urlsplit(base_url)
    tls = parts.scheme == "grpcs"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal keeps its brackets in a gRPC target
    return f"{host}:{parts.port or DEFAULT_PORTS[parts.scheme]}", tls


def attempt_error(error: grpc.aio.AioRpcError) -> UpstreamAttemptError:
    """A short, sanitized account of a failed call: the status name, never its details."""
    code = error.code()
    name = code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
    if code in _REJECTIONS:
        return RivaRejectedError(
            f"the Riva server rejected the request ({name}); check that `voice_name` is a "
            "voice of `language_code` on that server and that it supports the encoding and "
            "sample rate",
            name,
        )
    reason = _REASONS.get(code, "the Riva server failed")
    return UpstreamAttemptError(f"{reason} ({name})", retryable=True)


class RivaUpstream:
    """One gRPC channel to one Riva server, opened on first use in the running loop."""

    def __init__(self, settings: UpstreamSettings) -> None:
        self.settings = settings
        self.target, self._tls = target_of(settings.base_url)
        self._root_certificates: bytes | None = None
        if settings.tls_ca_file is not None:
            try:
                self._root_certificates = settings.tls_ca_file.read_bytes()
            except OSError as exc:
                raise ConfigError(
                    f"upstreams.{settings.name}.tls_ca_file: cannot read "
                    f"{settings.tls_ca_file}: {exc.strerror}"
                ) from None
        metadata = {key.lower(): secret.value for key, secret in settings.metadata.items()}
        if settings.api_key is not None:
            metadata.setdefault("authorization", f"Bearer {settings.api_key.value}")
        self._metadata = tuple(metadata.items())
        self._channel: grpc.aio.Channel | None = None
        self._stub: riva_tts_pb2_grpc.RivaSpeechSynthesisStub | None = None

    def _connect(self) -> riva_tts_pb2_grpc.RivaSpeechSynthesisStub:
        if self._stub is None:
            if self._tls:
                credentials = grpc.ssl_channel_credentials(
                    root_certificates=self._root_certificates
                )
                channel = grpc.aio.secure_channel(self.target, credentials, CHANNEL_OPTIONS)
            else:
                channel = grpc.aio.insecure_channel(self.target, CHANNEL_OPTIONS)
            self._channel = channel
            self._stub = riva_tts_pb2_grpc.RivaSpeechSynthesisStub(channel)
        return self._stub

    async def _await_connection(self, deadline: Deadline) -> None:
        """Wait up to the connect timeout while the channel is still connecting.

        A channel already known to fail is not waited on: the call itself then fails at once
        with UNAVAILABLE, so a dead deployment costs no time before the next one is tried."""
        channel = self._channel
        assert channel is not None
        waiting = (grpc.ChannelConnectivity.IDLE, grpc.ChannelConnectivity.CONNECTING)
        state = channel.get_state(try_to_connect=True)
        if state not in waiting:
            return
        try:
            async with asyncio.timeout(deadline.left(self.settings.timeouts.connect_s)):
                while state in waiting:
                    await channel.wait_for_state_change(state)
                    state = channel.get_state(try_to_connect=True)
        except TimeoutError:
            raise UpstreamAttemptError(
                "the Riva server could not be reached in time", retryable=True
            ) from None

    async def synthesize(self, request: SpeechRequest, deadline: Deadline) -> bytes:
        """The audio bytes of one ``Synthesize`` call, or UpstreamAttemptError."""
        stub = self._connect()
        await self._await_connection(deadline)
        message = riva_tts_pb2.SynthesizeSpeechRequest(
            text=request.text,
            language_code=request.language_code,
            encoding=request.encoding,
            sample_rate_hz=request.sample_rate_hz,
            voice_name=request.voice_name,
        )
        try:
            reply = await stub.Synthesize(
                message,
                timeout=deadline.left(self.settings.timeouts.first_byte_s),
                metadata=self._metadata,
            )
        except grpc.aio.AioRpcError as error:
            raise attempt_error(error) from None
        audio = bytes(reply.audio)
        if not audio:
            raise UpstreamAttemptError("the Riva server returned no audio", retryable=True)
        return audio

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
        self._channel = None
        self._stub = None

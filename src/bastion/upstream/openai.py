"""HTTP client for OpenAI-compatible upstreams (vLLM, SGLang, OpenAI itself, the simulator).

It knows nothing about keys, limits or money.  It sends bytes Bastion prepared, with the
operator's credential, to one deployment, and returns the reply's status and a way to read
its body under separate connect, first-byte, between-chunk and total deadlines.  Redirects are
never followed; the client's headers are never forwarded.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from multidict import CIMultiDict

from bastion.errors import ConfigError, UpstreamError
from bastion.settings import UpstreamSettings
from bastion.upstream.wire import (
    BodyWriter,
    ConnectError,
    Pool,
    Reply,
    WireError,
)


class UpstreamAttemptError(UpstreamError):
    """Why one attempt at one deployment failed; ``retryable`` means another deployment may
    be tried (nothing has reached the client yet)."""

    def __init__(self, reason: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.upstream_status = status


@dataclass(slots=True)
class Deadline:
    """The total deadline of one request, shared by every wait on the upstream."""

    at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    def left(self, cap: float) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            raise UpstreamAttemptError("the upstream did not finish in time", retryable=False)
        return min(cap, left)


class UpstreamReply:
    """An upstream answer whose headers arrived; the body is read on demand."""

    __slots__ = ("_reply", "content_type", "status")

    def __init__(self, reply: Reply) -> None:
        self._reply = reply
        self.status = reply.status
        self.content_type = reply.content_type

    async def body(self, limit: int = 256 * 1024 * 1024) -> bytes:
        # the reply's own timer bounds this read: the request's total, and each gap
        try:
            return await self._reply.read(limit)
        except WireError as failure:
            # the client's own messages name the fault, never the upstream's content
            reason = "the upstream did not finish in time" if failure.timeout else str(failure)
            raise UpstreamAttemptError(reason, retryable=False) from None

    async def chunks(self) -> AsyncIterator[bytes]:
        """Body chunks as they arrive; a gap longer than the between-chunk timeout fails."""
        try:
            async for chunk in self._reply.chunks():
                yield chunk
        except WireError as failure:
            raise UpstreamAttemptError(
                "the upstream stopped sending before the end"
                if failure.timeout
                else "the upstream connection broke before the end",
                retryable=False,
            ) from None

    def close(self) -> None:
        """Drop the connection: used when the client leaves, so the upstream stops working."""
        self._reply.close()

    def release(self) -> None:
        """Return a fully read connection to the pool."""
        self._reply.release()


class OpenAIUpstream:
    """One pooled connection set to one upstream server."""

    def __init__(self, settings: UpstreamSettings) -> None:
        self.settings = settings
        headers: CIMultiDict[str] = CIMultiDict(
            {"User-Agent": "bastion", "Accept-Encoding": "identity"}
        )
        headers.update(settings.headers)  # the operator's, replacing ours whatever their case
        if settings.api_key is not None:
            headers["Authorization"] = f"Bearer {settings.api_key.value}"
        tls: ssl.SSLContext | None = None
        if settings.tls_ca_file is not None and settings.base_url.startswith("https:"):
            try:
                tls = ssl.create_default_context(cafile=str(settings.tls_ca_file))
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(
                    f"upstreams.{settings.name}.tls_ca_file: cannot read "
                    f"{settings.tls_ca_file}: {getattr(exc, 'strerror', None) or exc}"
                ) from None
        timeouts = settings.timeouts
        try:
            self._pool = Pool(
                settings.base_url,
                headers,
                max_connections=settings.max_connections,
                connect_s=timeouts.connect_s,
                between_chunks_s=timeouts.between_chunks_s,
                tls=tls,
            )
        except ValueError as problem:  # a header that cannot be sent, found at start
            raise ConfigError(f"upstreams.{settings.name}.{problem}") from None

    async def send(
        self,
        path: str,
        data: bytes | BodyWriter,
        *,
        content_type: str | None,
        deadline: Deadline,
    ) -> UpstreamReply:
        """POST to ``<base_url><path>`` and wait for the reply's headers (the first byte)."""
        timeouts = self.settings.timeouts
        try:
            reply = await self._pool.post(
                path,
                data,
                content_type,
                first_byte_s=timeouts.first_byte_s,
                total_s=deadline.left(timeouts.total_s),
            )
        except ConnectError as failure:
            raise UpstreamAttemptError(
                "the upstream did not answer in time"
                if failure.timeout
                else "the upstream could not be reached",
                retryable=True,
            ) from None
        except WireError as failure:
            raise UpstreamAttemptError(
                "the upstream did not answer in time"
                if failure.timeout
                else "the upstream closed the connection without answering",
                retryable=True,
            ) from None
        return UpstreamReply(reply)

    async def close(self) -> None:
        await self._pool.close()

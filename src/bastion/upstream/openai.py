"""HTTP client for OpenAI-compatible upstreams (vLLM, SGLang, OpenAI itself, the simulator).

It knows nothing about keys, limits or money.  It sends bytes Bastion prepared, with the
operator's credential, to one deployment, and returns the reply's status and a way to read
its body under separate connect, first-byte, between-chunk and total deadlines.  Redirects are
never followed; the client's headers are never forwarded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from bastion.errors import UpstreamError
from bastion.settings import UpstreamSettings

FRESH_S = 0.005
"""A deadline this close to its full length counts as full (the first attempt's)."""


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


def _read_gap(response: aiohttp.ClientResponse, seconds: float) -> None:
    """Set the read timer of the response's connection to ``seconds`` from now on."""
    connection = response.connection
    protocol = connection.protocol if connection is not None else None
    if protocol is None:
        return  # the body is already complete
    protocol.read_timeout = seconds
    # aiohttp re-arms its timer on the next bytes; re-arm it now so the gap before the first
    # body bytes is measured with the new limit too (pinned aiohttp: tests cover this)
    rearm = getattr(protocol, "_reschedule_timeout", None)
    if callable(rearm):
        rearm()


class UpstreamReply:
    """An upstream answer whose headers arrived; the body is read on demand."""

    __slots__ = ("_deadline", "_response", "_settings", "content_type", "status")

    def __init__(
        self, response: aiohttp.ClientResponse, settings: UpstreamSettings, deadline: Deadline
    ) -> None:
        self._response = response
        self._settings = settings
        self._deadline = deadline
        self.status = response.status
        self.content_type = response.content_type

    async def body(self, limit: int = 256 * 1024 * 1024) -> bytes:
        # aiohttp's own timers bound this read: the request's total, and sock_read per gap
        try:
            data = await self._response.content.read(limit + 1)
        except TimeoutError:
            raise UpstreamAttemptError(
                "the upstream did not finish in time", retryable=False
            ) from None
        except (aiohttp.ClientError, OSError):
            raise UpstreamAttemptError("the upstream connection failed", retryable=False) from None
        if len(data) > limit:
            raise UpstreamAttemptError("the upstream answer is too large", retryable=False)
        return data

    async def chunks(self) -> AsyncIterator[bytes]:
        """Body chunks as they arrive; a gap longer than the between-chunk timeout fails."""
        content = self._response.content
        # every gap is bounded by aiohttp's read timer (set to between_chunks_s in send)
        while True:
            try:
                chunk = await content.readany()
            except TimeoutError:
                raise UpstreamAttemptError(
                    "the upstream stopped sending before the end", retryable=False
                ) from None
            except (aiohttp.ClientError, OSError):
                raise UpstreamAttemptError(
                    "the upstream connection broke before the end", retryable=False
                ) from None
            if not chunk:
                return
            yield chunk

    def close(self) -> None:
        """Drop the connection: used when the client leaves, so the upstream stops working."""
        self._response.close()

    def release(self) -> None:
        """Return a fully read connection to the pool."""
        self._response.release()


class OpenAIUpstream:
    """One pooled connection set to one upstream server."""

    def __init__(self, settings: UpstreamSettings) -> None:
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None
        # User-Agent here rather than as the session's default with aiohttp's skipped: either
        # of those costs aiohttp a header merge per request
        headers: CIMultiDict[str] = CIMultiDict(
            {"User-Agent": "bastion", "Accept-Encoding": "identity"}
        )
        headers.update(settings.headers)  # the operator's, replacing ours whatever their case
        if settings.api_key is not None:
            headers["Authorization"] = f"Bearer {settings.api_key.value}"
        self._headers = headers
        self._headers_for: dict[str | None, CIMultiDict[str]] = {}
        self._urls: dict[str, URL] = {}
        self._fresh_timeout = self._timeouts(settings.timeouts.total_s)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self.settings.max_connections,
                limit_per_host=self.settings.max_connections,
                ttl_dns_cache=60,
                keepalive_timeout=30,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=self.settings.timeouts.connect_s
                ),
                auto_decompress=True,
                # Requests of every tenant share this session: a cookie one answer sets must
                # not ride along on the next request, whoever sends it.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def send(
        self,
        path: str,
        data: Any,
        *,
        content_type: str | None,
        deadline: Deadline,
        extra_headers: Mapping[str, str] | None = None,
    ) -> UpstreamReply:
        """POST to ``<base_url><path>`` and wait for the reply's headers (the first byte)."""
        headers = self._headers_for.get(content_type) if not extra_headers else None
        if headers is None:
            headers = CIMultiDict(self._headers)
            if content_type:
                headers["Content-Type"] = content_type
            if extra_headers:
                headers.update(extra_headers)
            elif len(self._headers_for) < 64:
                self._headers_for[content_type] = headers  # aiohttp copies what it is given
        url = self._urls.get(path)
        if url is None:
            url = URL(self.settings.base_url + path)
            if len(self._urls) < 256:  # the endpoints' paths: a handful
                self._urls[path] = url
        try:
            response = await self._client().post(
                url,
                data=data,
                headers=headers,
                allow_redirects=False,
                timeout=self._timeout(deadline),
            )
            timeouts = self.settings.timeouts
            if timeouts.between_chunks_s != timeouts.first_byte_s:
                _read_gap(response, timeouts.between_chunks_s)
        except TimeoutError:
            raise UpstreamAttemptError(
                "the upstream did not answer in time", retryable=True
            ) from None
        except aiohttp.ClientConnectorError:
            raise UpstreamAttemptError(
                "the upstream could not be reached", retryable=True
            ) from None
        except (aiohttp.ClientError, OSError):
            raise UpstreamAttemptError(
                "the upstream closed the connection without answering", retryable=True
            ) from None
        return UpstreamReply(response, self.settings, deadline)

    def _timeout(self, deadline: Deadline) -> aiohttp.ClientTimeout:
        """aiohttp's own timers, set once per request (no timer of ours per await): connect;
        the read timer, armed once connected, bounds the wait for the first byte; the whole
        exchange.  Once the head is in, the read timer becomes the between-chunk gap.  A
        request's first attempt (its deadline a few milliseconds old) shares one object."""
        total_s = self.settings.timeouts.total_s
        left = deadline.left(total_s)
        return self._fresh_timeout if left >= total_s - FRESH_S else self._timeouts(left)

    def _timeouts(self, total_s: float) -> aiohttp.ClientTimeout:
        timeouts = self.settings.timeouts
        return aiohttp.ClientTimeout(
            total=total_s, sock_connect=timeouts.connect_s, sock_read=timeouts.first_byte_s
        )

    async def get(self, path: str, deadline: Deadline) -> UpstreamReply:
        try:
            async with asyncio.timeout(deadline.left(self.settings.timeouts.first_byte_s)):
                response = await self._client().get(
                    self.settings.base_url + path, headers=self._headers, allow_redirects=False
                )
        except (TimeoutError, aiohttp.ClientError, OSError):
            raise UpstreamAttemptError(
                "the upstream could not be reached", retryable=True
            ) from None
        return UpstreamReply(response, self.settings, deadline)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

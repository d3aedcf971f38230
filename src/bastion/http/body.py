"""Reading request bodies under a byte cap that counts what arrives, not what is announced."""

from __future__ import annotations

from aiohttp import web

from bastion.errors import RequestTooLargeError


def too_large(limit: int) -> RequestTooLargeError:
    return RequestTooLargeError(
        f"The request body exceeds the limit of {limit:,} bytes for this endpoint."
    )


def check_announced(request: web.Request, limit: int) -> None:
    """Refuse at once when Content-Length already says too much (no byte is read)."""
    length = request.content_length
    if length is not None and length > limit:
        raise too_large(limit)


async def read_capped(request: web.Request, limit: int) -> bytes:
    check_announced(request, limit)
    try:
        return await request.read()  # aiohttp enforces client_max_size on received bytes
    except web.HTTPRequestEntityTooLarge:
        raise too_large(limit) from None

"""Reading a submitted form: text fields only, bounded, stripped of control characters."""

from __future__ import annotations

from aiohttp import web

MAX_FORM_BYTES = 64 * 1024
MAX_FIELD_CHARS = 4096


class FormTooLargeError(Exception):
    pass


async def read_form(request: web.Request) -> dict[str, str]:
    """The form's text fields (first value of each), at most 64 KiB in all."""
    if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
        raise FormTooLargeError()
    if request.content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return {}
    data = await request.post()
    out: dict[str, str] = {}
    for name, value in data.items():
        if name in out or not isinstance(value, str):
            continue
        out[name] = "".join(ch for ch in value[:MAX_FIELD_CHARS] if ch >= " " or ch in "\t\n")
    return out

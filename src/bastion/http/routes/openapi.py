"""``GET /openapi.json`` and ``GET /openapi.yaml``: the public API's OpenAPI document.

The document ships in the package (``bastion/http/openapi.yaml``) with open ``model``
strings; served, it carries this gateway's own catalog: an ``enum`` of the model ids and
aliases each endpoint takes, the configured TTS languages (any letter case) and the text
limit.  No key is needed: it describes the API, not anyone's data.
"""

from __future__ import annotations

import copy
import functools
import re
from importlib import resources
from typing import Any

import orjson
import yaml
from aiohttp import web

from bastion import __version__
from bastion.core.catalog import Catalog, Endpoint
from bastion.http.keys import RUNTIME
from bastion.settings import Settings

REQUEST_SCHEMAS = {
    Endpoint.CHAT: "ChatCompletionRequest",
    Endpoint.COMPLETIONS: "CompletionRequest",
    Endpoint.RESPONSES: "ResponseRequest",
    Endpoint.EMBEDDINGS: "EmbeddingRequest",
    Endpoint.IMAGES: "ImageRequest",
    Endpoint.TRANSCRIPTIONS: "TranscriptionRequest",
}


@functools.cache
def shipped() -> dict[str, Any]:
    """The document as shipped in the package."""
    text = resources.files("bastion.http").joinpath("openapi.yaml").read_text(encoding="utf-8")
    document: dict[str, Any] = yaml.safe_load(text)
    return document


def _any_case(text: str) -> str:
    return "".join(
        f"[{c.lower()}{c.upper()}]" if c.lower() != c.upper() else re.escape(c) for c in text
    )


def for_gateway(catalog: Catalog, max_tts_chars: int) -> dict[str, Any]:
    """The shipped document with this gateway's models, languages and limits filled in."""
    document = copy.deepcopy(shipped())
    document["info"]["version"] = __version__
    schemas = document["components"]["schemas"]
    models = catalog.visible_to(None)
    for endpoint, name in REQUEST_SCHEMAS.items():
        names = sorted({n for m in models if endpoint in m.endpoints for n in (m.id, *m.aliases)})
        if names:
            schemas[name]["properties"]["model"]["enum"] = names
    speech = schemas["SpeechRequest"]["properties"]
    speech["text"]["maxLength"] = max_tts_chars
    languages = catalog.languages
    if languages:
        speech["language_code"]["pattern"] = (
            "^(" + "|".join(_any_case(code) for code in languages) + ")$"
        )
        speech["language_code"]["examples"] = list(languages)
    return document


class _Served:
    """The rendered document, rebuilt only when the catalog changes (a configuration reload)."""

    def __init__(self) -> None:
        self._key: tuple[int, int] | None = None
        self.json = b""
        self.yaml = b""

    def render(self, settings: Settings) -> _Served:
        key = (id(settings.catalog), settings.listener.max_tts_text_chars)
        if key != self._key:
            document = for_gateway(settings.catalog, settings.listener.max_tts_text_chars)
            self.json = orjson.dumps(document)
            self.yaml = yaml.safe_dump(document, sort_keys=False, allow_unicode=True).encode()
            self._key = key
        return self


SERVED: web.AppKey[_Served] = web.AppKey("openapi", _Served)


async def as_json(request: web.Request) -> web.Response:
    served = request.app[SERVED].render(request.app[RUNTIME].settings)
    return web.Response(body=served.json, content_type="application/json")


async def as_yaml(request: web.Request) -> web.Response:
    served = request.app[SERVED].render(request.app[RUNTIME].settings)
    return web.Response(body=served.yaml, content_type="application/yaml")


def add_routes(app: web.Application) -> None:
    app[SERVED] = _Served()
    app.router.add_get("/openapi.json", as_json)
    app.router.add_get("/openapi.yaml", as_yaml)

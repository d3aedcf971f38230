"""The model catalog: which public model ids exist, what each serves, where it runs, its price.

Resolution is a dictionary lookup built once at start; aliases point at the same
:class:`Model`.  Anything that cannot be served on the asked endpoint, or is not enabled for
the caller's tier, is reported the same way (400 ``model_not_found``), so a caller learns
nothing about models it may not use.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from bastion.core.money import FREE, Picos
from bastion.errors import ModelNotFoundError


class Endpoint(StrEnum):
    CHAT = "chat"
    COMPLETIONS = "completions"
    RESPONSES = "responses"
    EMBEDDINGS = "embeddings"
    IMAGES = "images"
    TRANSCRIPTIONS = "transcriptions"
    TTS = "tts"

    @property
    def path(self) -> str:
        return ENDPOINT_PATHS[self]

    @property
    def streams(self) -> bool:
        return self in (Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.RESPONSES)


ENDPOINT_PATHS: Mapping[Endpoint, str] = {
    Endpoint.CHAT: "/v1/chat/completions",
    Endpoint.COMPLETIONS: "/v1/completions",
    Endpoint.RESPONSES: "/v1/responses",
    Endpoint.EMBEDDINGS: "/v1/embeddings",
    Endpoint.IMAGES: "/v1/images/generations",
    Endpoint.TRANSCRIPTIONS: "/v1/audio/transcriptions",
    Endpoint.TTS: "/api/v1/tts/text_to_audio",
}

CATEGORY_ENDPOINTS: Mapping[str, frozenset[Endpoint]] = {
    "chat": frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.RESPONSES}),
    "embeddings": frozenset({Endpoint.EMBEDDINGS}),
    "images": frozenset({Endpoint.IMAGES}),
    "transcriptions": frozenset({Endpoint.TRANSCRIPTIONS}),
    "tts": frozenset({Endpoint.TTS}),
}
"""Endpoints a category may serve; a model lists a subset of its category's endpoints."""


@dataclass(frozen=True, slots=True)
class Price:
    """Per-unit prices in pico-USD; a zero price makes that unit free."""

    input_token: Picos = FREE
    output_token: Picos = FREE
    image: Picos = FREE
    image_variants: Mapping[str, Picos] = field(default_factory=dict)
    """Per-image price by ``"WxH"`` or ``"WxH/quality"``; the most specific match wins."""
    audio_second: Picos = FREE
    min_audio_seconds: int = 0
    character: Picos = FREE

    def image_price(self, size: str | None, quality: str | None) -> Picos:
        if size and quality and f"{size}/{quality}" in self.image_variants:
            return self.image_variants[f"{size}/{quality}"]
        if size and size in self.image_variants:
            return self.image_variants[size]
        return self.image


@dataclass(frozen=True, slots=True)
class Deployment:
    """One upstream serving a model: which upstream, under which model id, with what weight."""

    upstream: str
    upstream_model: str
    weight: int = 1


@dataclass(frozen=True, slots=True)
class Model:
    id: str
    category: str
    endpoints: frozenset[Endpoint]
    price: Price
    deployments: tuple[Deployment, ...]
    aliases: tuple[str, ...] = ()
    max_output_tokens: int = 4096
    language_code: str | None = None
    created: int = 1_735_689_600  # 2025-01-01: stable, so /v1/models does not change per restart
    owned_by: str = "bastion"


@dataclass(frozen=True, slots=True)
class Tier:
    name: str
    requests_per_minute: int
    concurrent_requests: int
    models: frozenset[str] | None = None
    """Model ids this tier may use; None means every model in the catalog."""

    def allows(self, model: Model) -> bool:
        return self.models is None or model.id in self.models


class Catalog:
    """Immutable lookup from a public model id or alias to its :class:`Model`."""

    def __init__(self, models: Iterable[Model]) -> None:
        self.models: tuple[Model, ...] = tuple(models)
        self._by_name: dict[str, Model] = {}
        self._by_language: dict[str, Model] = {}
        for model in self.models:
            for name in (model.id, *model.aliases):
                if name in self._by_name:
                    raise ValueError(f"model name {name!r} is defined twice")
                self._by_name[name] = model
            if model.language_code is not None:
                if model.language_code in self._by_language:
                    raise ValueError(f"language {model.language_code!r} has two TTS models")
                self._by_language[model.language_code] = model

    def get(self, name: str) -> Model | None:
        return self._by_name.get(name)

    def resolve(self, name: object, endpoint: Endpoint, tier: Tier | None = None) -> Model:
        model = self._by_name.get(name) if isinstance(name, str) else None
        if model is None or endpoint not in model.endpoints or (tier and not tier.allows(model)):
            shown = name if isinstance(name, str) else repr(name)
            raise ModelNotFoundError(
                f"The model `{shown[:200]}` does not exist or is not available on {endpoint.path}"
            )
        return model

    def for_language(self, language_code: str, tier: Tier | None = None) -> Model | None:
        model = self._by_language.get(language_code)
        if model is None or (tier and not tier.allows(model)):
            return None
        return model

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(sorted(self._by_language))

    def visible_to(self, tier: Tier | None) -> list[Model]:
        return [m for m in self.models if tier is None or tier.allows(m)]

"""What a request consumed, and what that costs under a model's :class:`Price`.

The same functions price the worst case before a request (the hold) and the actual usage
after it (the charge), so the two can never disagree about units or rounding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bastion.core.catalog import Price
from bastion.core.money import Micros, Picos, cost


@dataclass(slots=True)
class Usage:
    """Units consumed by one request.  ``source`` says where the numbers came from."""

    input_tokens: int = 0
    output_tokens: int = 0
    images: int = 0
    image_size: str | None = None
    image_quality: str | None = None
    audio_ms: int = 0
    characters: int = 0
    source: str = "upstream"
    """``upstream`` (reported usage), ``estimated`` (counted by Bastion), ``gateway`` (measured)."""
    extra: dict[str, Any] = field(default_factory=dict)

    def is_empty(self) -> bool:
        return (
            not (self.input_tokens or self.output_tokens or self.images or self.audio_ms)
            and not self.characters
        )

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"source": self.source}
        for name in ("input_tokens", "output_tokens", "images", "audio_ms", "characters"):
            value = getattr(self, name)
            if value:
                data[name] = value
        if self.images:
            data["image_size"] = self.image_size
            data["image_quality"] = self.image_quality
        return data


def billed_audio_seconds(audio_ms: int, price: Price) -> int:
    """Whole seconds billed: each started second counts, never below the model's minimum."""
    return max(price.min_audio_seconds, -(-audio_ms // 1000)) if audio_ms else 0


def price_usage(usage: Usage, price: Price) -> Micros:
    lines: list[tuple[int, Picos]] = [
        (usage.input_tokens, price.input_token),
        (usage.output_tokens, price.output_token),
        (usage.characters, price.character),
    ]
    if usage.images:
        lines.append((usage.images, price.image_price(usage.image_size, usage.image_quality)))
    if usage.audio_ms:
        lines.append((billed_audio_seconds(usage.audio_ms, price), price.audio_second))
    return cost(*lines)

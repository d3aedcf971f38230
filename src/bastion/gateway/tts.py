"""``POST /api/v1/tts/text_to_audio``: text to speech through NVIDIA Riva, priced per character.

The request mirrors Riva's ``SynthesizeSpeechRequest`` and all five fields are required.  The
``language_code`` picks the model (one per language in the catalog); the model's deployments
are Riva servers.  Characters are counted as Python counts them, in Unicode code points
(``len(text)``): "héllo" is 5 characters, an emoji is 1.  The hold is the exact price of the
text, so a request that passes admission is always covered; the charge equals the hold.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bastion.core.calendar import now_ms
from bastion.core.catalog import Endpoint, Tier
from bastion.core.records import Principal
from bastion.core.usage import Usage
from bastion.errors import BastionError, InvalidRequestError, UpstreamError
from bastion.gateway.audio_format import (
    ENCODING_LIST,
    FORMATS,
    OPUS_RATES,
    WAV_CONTENT_TYPE,
    AudioFormat,
    prefers_wav,
    wav_file,
)
from bastion.gateway.proxy import Gateway, Outcome
from bastion.gateway.sink import Exchange, Sink
from bastion.gateway.synthesis import Synthesizer
from bastion.gateway.validation import require_str
from bastion.upstream.openai import UpstreamAttemptError
from bastion.upstream.riva import RivaRejectedError, SpeechRequest

MIN_SAMPLE_RATE_HZ = 8000
MAX_SAMPLE_RATE_HZ = 48000
MAX_VOICE_NAME_CHARS = 256
FIELDS = ("text", "language_code", "encoding", "sample_rate_hz", "voice_name")

_TYPE_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _integer(payload: Mapping[str, Any], name: str, hint: str) -> int:
    if name not in payload or payload[name] is None:
        raise InvalidRequestError(f"Missing required parameter: '{name}' ({hint}).")
    value = payload[name]
    # bool is an int subclass in Python, and 22050.0 is not an integer in JSON terms here
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequestError(
            f"Invalid type for '{name}': expected an integer ({hint}), "
            f"but got {_kind(value)} instead."
        )
    return value


def languages_for(gateway: Gateway, tier: Tier) -> dict[str, str]:
    """The caller's languages, case-folded → as configured (BCP 47 tags ignore case)."""
    catalog = gateway.catalog
    return {
        code.lower(): code
        for code in catalog.languages
        if (model := catalog.for_language(code, tier)) is not None
        and Endpoint.TTS in model.endpoints
    }


def parse_speech(
    payload: Mapping[str, Any], languages: Mapping[str, str], max_chars: int
) -> tuple[SpeechRequest, AudioFormat]:
    """Check the five fields in order; the first problem found is the one reported."""
    text = payload.get("text")
    if isinstance(text, str) and text == "":
        raise InvalidRequestError("Invalid 'text': empty string; send at least one character.")
    text = require_str(payload, "text")
    if text.isspace():
        raise InvalidRequestError(
            "Invalid 'text': it has only whitespace; there is nothing to say."
        )
    if len(text) > max_chars:
        raise InvalidRequestError(
            f"Invalid 'text': {len(text):,} characters is over the limit of {max_chars:,} "
            "characters (Unicode code points) per request; split the text."
        )

    configured = ", ".join(sorted(languages.values())) or "none"
    language = require_str(payload, "language_code")
    canonical = languages.get(language.lower())
    if canonical is None:
        raise InvalidRequestError(
            f"Unsupported 'language_code': '{language[:64]}'. Supported languages: {configured}."
        )

    encoding = _integer(payload, "encoding", f"Riva AudioEncoding: {ENCODING_LIST}")
    audio_format = FORMATS.get(encoding)
    if audio_format is None:
        raise InvalidRequestError(
            f"Unsupported 'encoding': {encoding}. Use a Riva AudioEncoding number: {ENCODING_LIST}."
        )

    rates = f"{MIN_SAMPLE_RATE_HZ} to {MAX_SAMPLE_RATE_HZ} Hz"
    rate = _integer(payload, "sample_rate_hz", rates)
    if not MIN_SAMPLE_RATE_HZ <= rate <= MAX_SAMPLE_RATE_HZ:
        raise InvalidRequestError(
            f"Unsupported 'sample_rate_hz': {rate}. Use a rate from {rates} (e.g. 22050)."
        )
    if audio_format.name == "OGGOPUS" and rate not in OPUS_RATES:
        raise InvalidRequestError(
            f"Unsupported 'sample_rate_hz' for OGGOPUS: {rate}. Opus takes only "
            f"{', '.join(map(str, OPUS_RATES))} Hz."
        )

    voice = require_str(payload, "voice_name")
    if voice.isspace():
        raise InvalidRequestError(
            "Invalid 'voice_name': it has only whitespace; name a voice of the language, "
            "e.g. 'English-US.Female-1'."
        )
    if len(voice) > MAX_VOICE_NAME_CHARS:
        raise InvalidRequestError(
            f"Invalid 'voice_name': longer than {MAX_VOICE_NAME_CHARS} characters."
        )
    return SpeechRequest(text, canonical, encoding, rate, voice), audio_format


async def handle_tts(
    gateway: Gateway,
    synthesizer: Synthesizer,
    exchange: Exchange,
    principal: Principal,
    payload: Mapping[str, Any],
    accept: str | None,
    sink: Sink,
) -> None:
    """Serve one text-to-speech call: validate, hold, synthesize, charge, then send."""
    tier = gateway.tier_of(principal)
    max_chars = gateway.settings.listener.max_tts_text_chars
    request, audio_format = parse_speech(payload, languages_for(gateway, tier), max_chars)
    model = gateway.catalog.for_language(request.language_code, tier)
    assert model is not None  # languages_for listed only languages with a model
    exchange.info["model"] = model.id
    usage = Usage(characters=len(request.text), source="gateway")
    ticket = await gateway.admit(exchange, principal, model, usage)
    exchange.headers.update(ticket.headers)
    outcome = Outcome(ticket, model, Endpoint.TTS, now_ms(), exchange=exchange)
    try:
        try:
            _deployment, audio = await synthesizer.synthesize(model, request)
        except RivaRejectedError as rejection:
            raise UpstreamError(
                f"The speech server for `{request.language_code}` rejected the request "
                f"({rejection.status_name}): the voice `{request.voice_name[:64]}` may not exist "
                f"for `{request.language_code}` there, or it may not support "
                f"{audio_format.name} at {request.sample_rate_hz} Hz."
            ) from None
        except UpstreamAttemptError as failure:
            raise UpstreamError(
                f"The speech server for `{request.language_code}` failed: {failure.reason}."
            ) from None
        content_type = audio_format.content_type
        if prefers_wav(accept, audio_format):
            audio = wav_file(audio, audio_format, request.sample_rate_hz)
            content_type = WAV_CONTENT_TYPE
        headers = {
            **exchange.headers,
            "X-Sample-Rate": str(request.sample_rate_hz),
            "X-Audio-Encoding": audio_format.name,
        }
        # Commit before completion: the audio leaves only once its charge is durable.
        await gateway.answer(outcome, usage, sink, audio, content_type, headers)
    except BastionError as error:
        outcome.status = error.status
        raise
    finally:
        await gateway.finish(outcome)

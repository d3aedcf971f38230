"""The audio encodings of text to speech: Riva's ``AudioEncoding`` numbers, the media type
each is served as, and the WAV container Bastion can put around the raw ones.

The numbers are those of the proto shipped in ``nvidia-riva-client`` (``riva_audio.proto``):
1 LINEAR_PCM, 2 FLAC, 3 MULAW, 4 OGGOPUS, 20 ALAW.  Raw encodings (PCM, µ-law, A-law) carry
no rate of their own, so every answer also says it in ``X-Sample-Rate``.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AudioFormat:
    code: int
    name: str
    content_type: str
    wav_tag: int | None = None
    """WAVE ``wFormatTag`` when the encoding is raw samples a WAV file can hold."""
    sample_bytes: int = 1


# audio/pcm is the contract's decision for LINEAR_PCM.  G.711 goes as audio/PCMU and
# audio/PCMA (RFC 4856): unlike audio/basic, which means µ-law at 8000 Hz only, they name the
# companding and hold at any rate, and they are the pair RTP and telephony software know.
FORMATS: Mapping[int, AudioFormat] = {
    1: AudioFormat(1, "LINEAR_PCM", "audio/pcm", wav_tag=1, sample_bytes=2),
    2: AudioFormat(2, "FLAC", "audio/flac"),
    3: AudioFormat(3, "MULAW", "audio/PCMU", wav_tag=7),
    4: AudioFormat(4, "OGGOPUS", "audio/ogg; codecs=opus"),
    20: AudioFormat(20, "ALAW", "audio/PCMA", wav_tag=6),
}

ENCODING_LIST = ", ".join(f"{f.code} {f.name}" for f in FORMATS.values())

OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
"""The only input rates an Opus encoder takes (RFC 6716); other rates are refused for OGGOPUS
rather than silently resampled, so the decoded audio always has the rate that was asked."""

WAV_TYPES = frozenset({"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"})
WAV_CONTENT_TYPE = "audio/wav"


def _quality(params: list[str]) -> float:
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value.strip())
            except ValueError:
                return 0.0
    return 1.0


def prefers_wav(accept: str | None, audio_format: AudioFormat) -> bool:
    """Whether ``Accept`` asks for WAV at least as strongly as for the raw media type.

    Only raw encodings are wrapped; FLAC and Ogg are containers already, and are served as
    they are whatever the client accepts (``Accept`` is a preference, not a demand)."""
    if not accept or audio_format.wav_tag is None:
        return False
    wav_q = 0.0
    raw_q: float | None = None
    raw_type = audio_format.content_type.lower()
    for item in accept.split(","):
        media, *params = item.split(";")
        media = media.strip().lower()
        if media in WAV_TYPES:
            wav_q = max(wav_q, _quality(params))
        elif media == raw_type:
            raw_q = _quality(params)
    return wav_q > 0 and (raw_q is None or wav_q >= raw_q)


def wav_file(audio: bytes, audio_format: AudioFormat, sample_rate_hz: int) -> bytes:
    """``audio`` (raw mono samples) inside a RIFF/WAVE header.

    PCM gets the canonical 44-byte header.  µ-law and A-law (WAVE_FORMAT_MULAW / _ALAW) get
    the 18-byte ``fmt`` chunk and the ``fact`` chunk that non-PCM WAV files must carry."""
    tag = audio_format.wav_tag
    if tag is None:
        raise ValueError(f"{audio_format.name} cannot be wrapped in WAV")
    width = audio_format.sample_bytes
    frames = len(audio) // width
    pad = b"\x00" if len(audio) % 2 else b""  # RIFF chunks are word aligned
    if tag == 1:
        fmt = struct.pack("<HHIIHH", tag, 1, sample_rate_hz, sample_rate_hz * width, width, 16)
        extra = b""
    else:
        fmt = struct.pack("<HHIIHHH", tag, 1, sample_rate_hz, sample_rate_hz * width, width, 8, 0)
        extra = b"fact" + struct.pack("<II", 4, frames)
    body = (
        b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + extra
        + b"data"
        + struct.pack("<I", len(audio))
        + audio
        + pad
    )
    return b"RIFF" + struct.pack("<I", len(body)) + body

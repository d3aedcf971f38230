"""Encoders for Riva's AudioEncoding values: raw PCM, G.711 µ-law and A-law, FLAC, Ogg/Opus.

G.711 is written out here (the standard library's ``audioop`` is deprecated and gone in 3.13);
the code follows the ITU-T G.711 segment tables as the reference C implementation does, and
the decoders exist so tests can check the round trip.  FLAC and Opus come from libsndfile
through ``soundfile``, whose wheels bundle the library with both codecs.
"""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
import soundfile

LINEAR_PCM, FLAC, MULAW, OGGOPUS, ALAW = 1, 2, 3, 4, 20
ENCODINGS = {
    LINEAR_PCM: "LINEAR_PCM",
    FLAC: "FLAC",
    MULAW: "MULAW",
    OGGOPUS: "OGGOPUS",
    ALAW: "ALAW",
}
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)

Samples = npt.NDArray[np.int16]
Bytes = npt.NDArray[np.uint8]

_MULAW_BIAS = 0x84
_MULAW_CLIP = 8159
_MULAW_SEGMENT_ENDS = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
_ALAW_SEGMENT_ENDS = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])


def pcm16(samples: Samples) -> bytes:
    """Little-endian signed 16-bit samples."""
    data: bytes = samples.astype("<i2").tobytes()
    return data


def mulaw(samples: Samples) -> bytes:
    value = samples.astype(np.int32) >> 2  # µ-law companding works on 14-bit samples
    mask = np.where(value < 0, 0x7F, 0xFF)
    value = np.minimum(np.abs(value), _MULAW_CLIP) + (_MULAW_BIAS >> 2)
    segment = np.searchsorted(_MULAW_SEGMENT_ENDS, value, side="left")
    code = (np.minimum(segment, 7) << 4) | ((value >> (segment + 1)) & 0x0F)
    code = np.where(segment >= 8, 0x7F, code)
    codes: Bytes = ((code ^ mask) & 0xFF).astype(np.uint8)
    return codes.tobytes()


def alaw(samples: Samples) -> bytes:
    value = samples.astype(np.int32) >> 3  # A-law companding works on 13-bit samples
    mask = np.where(value >= 0, 0xD5, 0x55)
    value = np.where(value >= 0, value, -value - 1)
    segment = np.searchsorted(_ALAW_SEGMENT_ENDS, value, side="left")
    shift = np.where(segment < 2, 1, segment)
    code = (np.minimum(segment, 7) << 4) | ((value >> shift) & 0x0F)
    code = np.where(segment >= 8, 0x7F, code)
    codes: Bytes = ((code ^ mask) & 0xFF).astype(np.uint8)
    return codes.tobytes()


def mulaw_decode(data: bytes) -> Samples:
    code = ~np.frombuffer(data, dtype=np.uint8).astype(np.int32) & 0xFF
    magnitude = (((code & 0x0F) << 3) + _MULAW_BIAS) << ((code & 0x70) >> 4)
    return np.where(code & 0x80, _MULAW_BIAS - magnitude, magnitude - _MULAW_BIAS).astype(np.int16)


def alaw_decode(data: bytes) -> Samples:
    code = np.frombuffer(data, dtype=np.uint8).astype(np.int32) ^ 0x55
    segment = (code & 0x70) >> 4
    magnitude = (code & 0x0F) << 4
    magnitude = np.where(segment == 0, magnitude + 8, magnitude + 0x108)
    magnitude = np.where(segment > 1, magnitude << np.maximum(segment - 1, 0), magnitude)
    return np.where(code & 0x80, magnitude, -magnitude).astype(np.int16)


def _sndfile(samples: Samples, rate: int, container: str, subtype: str) -> bytes:
    out = io.BytesIO()
    soundfile.write(out, samples, rate, format=container, subtype=subtype)
    return out.getvalue()


def encode(samples: Samples, encoding: int, rate: int) -> bytes:
    """``samples`` (mono, at ``rate``) in ``encoding``; ValueError for an unknown one."""
    if encoding == LINEAR_PCM:
        return pcm16(samples)
    if encoding == MULAW:
        return mulaw(samples)
    if encoding == ALAW:
        return alaw(samples)
    if encoding == FLAC:
        return _sndfile(samples, rate, "FLAC", "PCM_16")
    if encoding == OGGOPUS:
        if rate not in OPUS_RATES:
            raise ValueError(f"Opus takes only {', '.join(map(str, OPUS_RATES))} Hz")
        return _sndfile(samples, rate, "OGG", "OPUS")
    raise ValueError(f"unknown encoding {encoding}")

"""The duration of an uploaded audio file, read by the gateway (never trusted from a client).

mutagen reads the container headers (MP3, FLAC, Ogg Vorbis/Opus, MP4/M4A, WAV, AIFF, ...);
plain PCM WAV falls back to the standard library.  An upload whose duration cannot be read is
refused before any upstream call, because it could not be priced.
"""

from __future__ import annotations

import contextlib
import math
import wave
from typing import IO

import mutagen

SUPPORTED = "mp3, mp4, m4a, mpeg, mpga, wav, flac, ogg, opus, aiff"


def duration_ms(file: IO[bytes]) -> int | None:
    """Duration in whole milliseconds (rounded up), or None if the format is unreadable."""
    file.seek(0)
    try:
        found = mutagen.File(file)
    except Exception:  # mutagen raises many types for corrupt input; all mean "unreadable"
        found = None
    length = getattr(getattr(found, "info", None), "length", None)
    if isinstance(length, int | float) and math.isfinite(length) and length > 0:
        return math.ceil(length * 1000)
    file.seek(0)
    with contextlib.suppress(wave.Error, EOFError, ValueError), wave.open(file, "rb") as wav:
        frames, rate = wav.getnframes(), wav.getframerate()
        if rate > 0 and frames > 0:
            return -(-frames * 1000 // rate)
    return None

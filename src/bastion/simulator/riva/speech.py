"""The simulator's audio: 16-bit mono samples at the requested rate.

Real speech comes from eSpeak NG (Debian's ``espeak-ng``; ``scripts/install`` adds it where it
can) run as a subprocess: the text goes in on stdin, never on the command line, so no text can
be read as an option, and SSML is off, so markup is spoken, not obeyed.  Its 22 050 Hz output
is resampled to the asked rate.

Without eSpeak NG (or with ``voice = "tones"``) the audio is a synthetic signal, documented so
tests can check lengths exactly: **60 ms per character** of text (Unicode code points), i.e.
``len(text) * rate * 60 // 1000`` samples; each word is a steady sine tone whose pitch (200 to
600 Hz) is derived from the word, whitespace is silence, and 5 ms ramps avoid clicks.
"""

from __future__ import annotations

import asyncio
import functools
import shutil
import struct
import zlib

import numpy as np
import numpy.typing as npt

from bastion.simulator.riva.voices import NATIVE_RATE_HZ, espeak_voice

Samples = npt.NDArray[np.int16]

TONE_MS_PER_CHAR = 60
TONE_AMPLITUDE = 0.3 * 32767
RAMP_MS = 5
LOWPASS_TAPS = 63


def tone_frames(characters: int, rate: int) -> int:
    """How many samples the synthetic signal has for ``characters`` at ``rate``."""
    return characters * rate * TONE_MS_PER_CHAR // 1000


def tones(text: str, rate: int) -> Samples:
    total = tone_frames(len(text), rate)
    pitches = np.zeros(len(text), dtype=np.float64)
    start = None
    for index, char in enumerate([*text, " "]):
        if char.isspace():
            if start is not None:
                word = text[start:index].encode("utf-8", "replace")
                pitches[start:index] = 200.0 + zlib.crc32(word) % 400
                start = None
        elif start is None:
            start = index
    owner = np.arange(total, dtype=np.int64) * len(text) // max(total, 1)
    frequency = pitches[owner]
    phase = np.cumsum(2.0 * np.pi * frequency / rate)
    ramp = max(1, rate * RAMP_MS // 1000)
    envelope = np.convolve((frequency > 0).astype(np.float64), np.ones(ramp) / ramp, mode="same")
    signal = TONE_AMPLITUDE * envelope * np.sin(phase)
    return np.round(signal).astype(np.int16)


def resample(samples: Samples, source: int, target: int) -> Samples:
    """Linear interpolation, after a windowed-sinc low-pass when lowering the rate (so that
    8 kHz speech does not fold the upper band back in as noise)."""
    if source == target or len(samples) == 0:
        return samples
    signal = samples.astype(np.float64)
    if target < source:
        cutoff = 0.5 * target / source
        n = np.arange(LOWPASS_TAPS) - (LOWPASS_TAPS - 1) / 2
        kernel = 2 * cutoff * np.sinc(2 * cutoff * n) * np.hamming(LOWPASS_TAPS)
        signal = np.convolve(signal, kernel / kernel.sum(), mode="same")
    count = round(len(samples) * target / source)
    positions = np.arange(count, dtype=np.float64) * (source / target)
    out = np.interp(positions, np.arange(len(signal), dtype=np.float64), signal)
    return np.clip(np.round(out), -32768, 32767).astype(np.int16)


@functools.cache
def espeak_binary() -> str | None:
    return shutil.which("espeak-ng")


def _wav_samples(data: bytes) -> tuple[Samples, int] | None:
    """The samples and rate of eSpeak NG's streamed WAV (its sizes are placeholders)."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    offset, rate = 12, 0
    while offset + 8 <= len(data):
        chunk, size = (
            data[offset : offset + 4],
            struct.unpack("<I", data[offset + 4 : offset + 8])[0],
        )
        body = offset + 8
        if chunk == b"fmt " and size >= 16:
            _tag, channels, rate, _bps, _align, bits = struct.unpack(
                "<HHIIHH", data[body : body + 16]
            )
            if channels != 1 or bits != 16:
                return None
        elif chunk == b"data":
            pcm = data[body:]
            pcm = pcm[: len(pcm) // 2 * 2]
            return np.frombuffer(pcm, dtype="<i2").astype(np.int16), rate
        offset = body + size + (size & 1)
    return None


async def espeak(text: str, language_code: str, voice_name: str) -> tuple[Samples, int] | None:
    """Speech from eSpeak NG at its own rate, or None if it is missing or failed."""
    binary = espeak_binary()
    if binary is None:
        return None
    process = await asyncio.create_subprocess_exec(
        binary,
        "-v",
        espeak_voice(language_code, voice_name),
        "-b",
        "1",  # the input is UTF-8
        "--stdout",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        out, _ = await process.communicate(text.encode("utf-8"))
    except asyncio.CancelledError:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    if process.returncode != 0:
        return None
    return _wav_samples(out)


async def speak(text: str, language_code: str, voice_name: str, rate: int, voice: str) -> Samples:
    """Samples of ``text`` at ``rate``: eSpeak NG if asked for (or ``auto`` and installed),
    the synthetic tones otherwise."""
    if voice != "tones":
        spoken = await espeak(text, language_code, voice_name)
        if spoken is not None:
            samples, source = spoken
            return await asyncio.to_thread(resample, samples, source or NATIVE_RATE_HZ, rate)
        if voice == "espeak":
            raise RuntimeError("espeak-ng is not installed or failed")
    return await asyncio.to_thread(tones, text, rate)

"""Minimal PNG writer for the simulated images: a two-colour horizontal gradient.

Every row is the same, so rows after the first use PNG's "Up" filter and are all zero
bytes. Those zero rows depend only on the size, so their deflate stream is made once per
size and spliced after the freshly compressed first row: an image costs one row of work.
"""

from __future__ import annotations

import functools
import struct
import zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_UP_FILTER = b"\x02"
_NO_FILTER = b"\x00"
_ZLIB_HEADER = b"\x78\x01"  # deflate, 32 KiB window, fastest level
_FINAL_EMPTY_BLOCK = b"\x03\x00"  # closes a deflate stream that ended on a sync flush
_ADLER_BASE = 65521


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(data, zlib.crc32(kind))
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _deflate(data: bytes) -> bytes:
    """Raw deflate blocks, byte-aligned and not final, so that streams can be joined."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)


def adler32_combine(first: int, second: int, second_length: int) -> int:
    """Adler-32 of two byte strings joined, from the checksums of each (as zlib does)."""
    a1, b1 = first & 0xFFFF, first >> 16
    a2, b2 = second & 0xFFFF, second >> 16
    a = (a1 + a2 - 1) % _ADLER_BASE
    b = (b1 + b2 + second_length * (a1 - 1)) % _ADLER_BASE
    return (b << 16) | a


@functools.lru_cache(maxsize=16)
def _zero_rows(width: int, height: int) -> tuple[bytes, int, int]:
    """(deflate blocks, Adler-32, length) of the all-zero "Up" rows after the first."""
    raw = (_UP_FILTER + bytes(width * 3)) * (height - 1)
    # Compressed from an empty window: its back-references never reach the first row.
    return _deflate(raw), zlib.adler32(raw), len(raw)


def _colours(seed: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    left = (seed & 0xFF, (seed >> 8) & 0xFF, (seed >> 16) & 0xFF)
    right = ((seed >> 24) & 0xFF, (seed >> 4) & 0xFF, (seed >> 12) & 0xFF)
    return left, right


def _row(width: int, seed: int) -> bytes:
    left, right = _colours(seed)
    span = max(width - 1, 1)
    row = bytearray(width * 3)
    for offset, (a, b) in enumerate(zip(left, right, strict=True)):
        row[offset::3] = bytes((a * (span - x) + b * x) // span for x in range(width))
    return bytes(row)


@functools.lru_cache(maxsize=64)  # benchmarks repeat prompts and sizes
def gradient_png(width: int, height: int, seed: int) -> bytes:
    first = _NO_FILTER + _row(width, seed)
    rest, rest_adler, rest_length = _zero_rows(width, height)
    adler = adler32_combine(zlib.adler32(first), rest_adler, rest_length)
    idat = _ZLIB_HEADER + _deflate(first) + rest + _FINAL_EMPTY_BLOCK + struct.pack(">I", adler)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"".join(
        (
            SIGNATURE,
            _chunk(b"IHDR", header),
            _chunk(b"tEXt", b"Software\0bastion-simulator (simulated image, no model ran)"),
            _chunk(b"IDAT", idat),
            _chunk(b"IEND", b""),
        )
    )

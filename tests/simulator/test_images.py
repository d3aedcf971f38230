"""POST /v1/images/generations and the PNGs it makes."""

from __future__ import annotations

import base64
import struct
import zlib

import aiohttp
import openai
import orjson
import pytest

from bastion.simulator.png import SIGNATURE, adler32_combine, gradient_png

from .harness import Simulator
from .schemas import validate


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data.startswith(SIGNATURE)
    chunks = []
    offset = len(SIGNATURE)
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(body, zlib.crc32(kind))
        chunks.append((kind, body))
        offset += 12 + length
    return chunks


def png_size(data: bytes) -> tuple[int, int]:
    chunks = png_chunks(data)
    kind, header = chunks[0]
    assert kind == b"IHDR"
    assert chunks[-1][0] == b"IEND"
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert (depth, colour) == (8, 2)
    return width, height


def test_png_decodes_to_the_declared_pixels() -> None:
    data = gradient_png(300, 257, 0x00FF8040)
    assert png_size(data) == (300, 257)
    idat = b"".join(body for kind, body in png_chunks(data) if kind == b"IDAT")
    raw = zlib.decompress(idat)  # checks the spliced stream's Adler-32 too
    stride = 1 + 300 * 3
    assert len(raw) == 257 * stride
    first = raw[:stride]
    assert first[0] == 0  # no filter
    assert first[1:4] == bytes((0x40, 0x80, 0xFF))  # the left colour from the seed
    assert raw[stride:] == (b"\x02" + bytes(300 * 3)) * 256  # "Up" rows: the same row again
    text = [body for kind, body in png_chunks(data) if kind == b"tEXt"]
    assert b"simulated" in text[0]


@pytest.mark.parametrize(("left", "right"), [(b"", b""), (b"abc", b""), (b"x" * 70000, b"yz" * 9)])
def test_adler32_combine(left: bytes, right: bytes) -> None:
    combined = adler32_combine(zlib.adler32(left), zlib.adler32(right), len(right))
    assert combined == zlib.adler32(left + right)


async def test_b64_json_is_the_default(client: openai.AsyncOpenAI) -> None:
    raw = await client.images.with_raw_response.generate(
        model="stable-diffusion-xl-base-v10", prompt="a lighthouse", size="512x256", n=2
    )
    validate(orjson.loads(raw.content), "ImagesResponse")
    result = raw.parse()
    assert result.created > 0
    assert result.data is not None
    assert len(result.data) == 2
    images = []
    for item in result.data:
        assert item.url is None
        assert item.b64_json is not None
        images.append(base64.b64decode(item.b64_json))
    assert all(png_size(image) == (512, 256) for image in images)
    assert images[0] != images[1]


async def test_url_results_are_served(
    client: openai.AsyncOpenAI, simulator: Simulator, http: aiohttp.ClientSession
) -> None:
    result = await client.images.generate(
        model="m", prompt="a lighthouse", response_format="url", size="256x256"
    )
    assert result.data is not None
    url = result.data[0].url
    assert url is not None
    assert result.data[0].b64_json is None
    assert url.startswith(f"{simulator.url}/_simulator/images/")
    async with http.get(url) as response:
        assert response.status == 200
        assert response.content_type == "image/png"
        assert png_size(await response.read()) == (256, 256)
    async with http.get(f"{simulator.url}/_simulator/images/unknown.png") as response:
        assert response.status == 404


async def test_default_size(client: openai.AsyncOpenAI) -> None:
    result = await client.images.generate(prompt="x")
    assert result.data is not None
    assert result.data[0].b64_json is not None
    assert png_size(base64.b64decode(result.data[0].b64_json)) == (1024, 1024)


@pytest.mark.parametrize(
    "body",
    [
        {"model": "m"},
        {"model": "m", "prompt": ""},
        {"model": "m", "prompt": "x", "size": "4096x4096"},
        {"model": "m", "prompt": "x", "size": "big"},
        {"model": "m", "prompt": "x", "n": 11},
        {"model": "m", "prompt": "x", "response_format": "svg"},
    ],
)
async def test_bad_requests(
    simulator: Simulator, http: aiohttp.ClientSession, body: dict[str, object]
) -> None:
    async with http.post(f"{simulator.url}/v1/images/generations", json=body) as response:
        assert response.status == 400
        validate(await response.json(), "ErrorResponse")

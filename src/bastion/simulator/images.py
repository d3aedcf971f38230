"""POST /v1/images/generations, and GET /_simulator/images/{id}.png for `url` results."""

from __future__ import annotations

import base64
from collections import OrderedDict

from aiohttp import web

from bastion.simulator import params
from bastion.simulator.call import Call, Handler
from bastion.simulator.errors import SimulatorError, invalid
from bastion.simulator.png import gradient_png
from bastion.simulator.replies import error_response, json_response, new_id, now
from bastion.simulator.text import seed_of

MIN_SIDE = 256
MAX_SIDE = 2048
MAX_IMAGES = 10
DEFAULT_SIZE = "1024x1024"
STORE_SIZE = 128  # images kept for `url` results; the oldest is dropped first


class ImageStore:
    """A small bounded LRU of generated PNGs, served for `response_format: url`."""

    def __init__(self, capacity: int = STORE_SIZE) -> None:
        self.capacity = capacity
        self._images: OrderedDict[str, bytes] = OrderedDict()

    def put(self, png: bytes) -> str:
        image_id = new_id("img")
        self._images[image_id] = png
        if len(self._images) > self.capacity:
            self._images.popitem(last=False)
        return image_id

    def get(self, image_id: str) -> bytes | None:
        png = self._images.get(image_id)
        if png is not None:
            self._images.move_to_end(image_id)
        return png

    async def serve(self, request: web.Request) -> web.Response:
        png = self.get(request.match_info["image_id"])
        if png is None:
            return error_response(
                SimulatorError("image expired or unknown", status=404, code="not_found")
            )
        return web.Response(body=png, content_type="image/png")


def parse_size(value: object) -> tuple[int, int]:
    if value is None or value == "auto":
        value = DEFAULT_SIZE
    if isinstance(value, str):
        width, _, height = value.partition("x")
        if width.isdigit() and height.isdigit():
            w, h = int(width), int(height)
            if MIN_SIDE <= w <= MAX_SIDE and MIN_SIDE <= h <= MAX_SIDE:
                return w, h
    raise invalid(f"'size' must be 'WxH' with each side from {MIN_SIDE} to {MAX_SIDE}", "size")


def generate(store: ImageStore) -> Handler:
    async def create(call: Call) -> web.StreamResponse:
        body = call.body
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            raise invalid("'prompt' is required and must be a non-empty string", "prompt")
        n = params.integer(body, "n", lower=1, upper=MAX_IMAGES) or 1
        width, height = parse_size(body.get("size"))
        response_format = body.get("response_format") or "b64_json"
        if response_format not in ("b64_json", "url"):
            raise invalid("'response_format' must be 'b64_json' or 'url'", "response_format")
        seed = seed_of(prompt)
        images = [gradient_png(width, height, seed + i) for i in range(n)]
        data: list[dict[str, str]]
        if response_format == "url":
            root = f"{call.request.scheme}://{call.request.host}/_simulator/images/"
            data = [{"url": f"{root}{store.put(png)}.png"} for png in images]
        else:
            data = [{"b64_json": base64.b64encode(png).decode("ascii")} for png in images]
        return json_response({"created": now(), "data": data})

    return create

"""GET /v1/models: the default catalog of the spec, owned by "bastion-simulator"."""

from __future__ import annotations

from aiohttp import web

from bastion.simulator.call import Call
from bastion.simulator.replies import json_response

OWNER = "bastion-simulator"
CREATED = 1_735_689_600  # 2025-01-01: fixed, so listings are reproducible

# The spec's default catalog minus the tts-* models: those are served over Riva's gRPC
# protocol, not by this OpenAI-compatible server.
CATALOG = (
    "gpt-oss-120b",
    "gpt-oss-20b",
    "Llama-3.1-8B-Instruct",
    "Meta-Llama-3_3-70B-Instruct",
    "Qwen3-32B",
    "Mistral-Small-3.2-24B-Instruct-2506",
    "Mistral-Nemo-Instruct-2407",
    "Qwen3-Coder-30B-A3B-Instruct",
    "Qwen2.5-VL-72B-Instruct",
    "Mistral-7B-Instruct-v0.3",
    "Qwen3Guard-Gen-8B",
    "Qwen3Guard-Gen-0.6B",
    "Qwen3-Embedding-8B",
    "bge-m3",
    "bge-multilingual-gemma2",
    "stable-diffusion-xl-base-v10",
    "whisper-large-v3",
    "whisper-large-v3-turbo",
)


def model_object(model_id: str) -> dict[str, object]:
    return {"id": model_id, "object": "model", "created": CREATED, "owned_by": OWNER}


async def list_models(call: Call) -> web.StreamResponse:
    return json_response({"object": "list", "data": [model_object(m) for m in CATALOG]})


async def retrieve(call: Call) -> web.StreamResponse:
    # Any id is served (the simulator answers for every model), so any id is echoed.
    return json_response(model_object(call.request.match_info["model"]))

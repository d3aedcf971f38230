"""The fast upstream (nginx returning fixed OpenAI-shaped bodies) and the request bodies.

nginx answers ``/json/v1/chat/completions`` with a fixed ``chat.completion`` and
``/sse/v1/chat/completions`` with a fixed SSE stream (role chunk, 12 content chunks, a finish
chunk, a usage chunk, ``[DONE]``), whatever the request says.  Paced streams (for time to
first token) come from Bastion's simulator instead, which nginx cannot pace.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MODEL_JSON = "bench-json"
MODEL_SSE = "bench-sse"
MODEL_PACED = "bench-paced"
PROMPT = "Say hello in one short sentence."
MAX_TOKENS = 16
STREAM_TOKENS = 12
CREATED = 1764000000


def request_body(model: str, *, stream: bool = False) -> bytes:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": MAX_TOKENS,
    }
    if stream:
        body["stream"] = True
    return json.dumps(body, separators=(",", ":")).encode()


def _usage() -> dict[str, int]:
    return {"prompt_tokens": 14, "completion_tokens": STREAM_TOKENS, "total_tokens": 30}


def json_answer(model: str = MODEL_JSON) -> bytes:
    answer = {
        "id": "chatcmpl-bench0000000000000000",
        "object": "chat.completion",
        "created": CREATED,
        "model": model,
        "system_fingerprint": "bench-nginx",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Hello! This is a fixed answer from the benchmark's upstream.",
                    "refusal": None,
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": _usage(),
    }
    return json.dumps(answer, separators=(",", ":")).encode()


def sse_answer(model: str = MODEL_SSE) -> bytes:
    head = {
        "id": "chatcmpl-bench1",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": model,
    }

    def event(choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> str:
        payload: dict[str, Any] = {**head, "choices": choices}
        if usage is not None:
            payload["usage"] = usage
        return "data: " + json.dumps(payload, separators=(",", ":")) + "\n\n"

    def choice(delta: dict[str, str], finish: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": delta, "finish_reason": finish}]

    parts = [event(choice({"role": "assistant", "content": ""}))]
    parts += [event(choice({"content": f" tok{i}"})) for i in range(STREAM_TOKENS)]
    parts.append(event(choice({}, "stop")))
    parts.append(event([], _usage()))
    parts.append("data: [DONE]\n\n")
    return "".join(parts).encode()


def _nginx_string(data: bytes) -> str:
    """A body as an nginx config string: double-quoted, with quotes and backslashes escaped."""
    text = data.decode()
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "${dollar}") + '"'


def nginx_config(workdir: Path, port: int) -> Path:
    """Write nginx.conf (one worker, fixed bodies, long keep-alive) and return its path."""
    workdir.mkdir(parents=True, exist_ok=True)
    for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (workdir / name).mkdir(exist_ok=True)
    conf = f"""
worker_processes 1;
daemon off;
master_process on;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {workdir}/client_body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    client_body_buffer_size 64k;
    server_tokens off;
    geo $dollar {{ default "$"; }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = /json/v1/chat/completions {{
            default_type application/json;
            return 200 {_nginx_string(json_answer())};
        }}
        location = /sse/v1/chat/completions {{
            default_type text/event-stream;
            add_header Cache-Control no-cache;
            return 200 {_nginx_string(sse_answer())};
        }}
        location / {{ return 404; }}
    }}
}}
"""
    path = workdir / "nginx.conf"
    path.write_text(conf)
    return path

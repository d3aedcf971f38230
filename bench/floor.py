"""The floor: the least a Python pass-through proxy can do, to measure Bastion against.

No auth, no limits, no metering, no validation: read the request body, POST it to the
upstream over a pooled aiohttp client, and relay the answer (a JSON body whole, an SSE
stream chunk by chunk as it arrives).  uvloop, aiohttp's server (llhttp parser), one process.
``--client wire`` relays through Bastion's own upstream client (``bastion.upstream.wire``)
instead, to measure Bastion against a pass-through with the same client.

    python -m bench.floor --port 8601 --route /json/=http://127.0.0.1:8602/json/ ...

A request path that starts with a route's prefix goes to that route's base URL with the
prefix replaced.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import signal
import sys

import aiohttp
from aiohttp import web

from bastion.upstream.wire import Pool

SESSION: web.AppKey[aiohttp.ClientSession] = web.AppKey("session", aiohttp.ClientSession)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--route", action="append", default=[], help="PREFIX=BASE_URL")
    parser.add_argument("--client", choices=("aiohttp", "wire"), default="aiohttp")
    parser.add_argument(
        "--young-gc-threshold",
        type=int,
        default=0,
        help="as Bastion serves: start-up objects frozen out of the cyclic collector and its "
        "young-generation threshold set to this (0: CPython's defaults, a minimal proxy's)",
    )
    return parser.parse_args(argv)


def make_app(routes: list[tuple[str, str]], client: str = "aiohttp") -> web.Application:
    ordered = sorted(routes, key=lambda r: len(r[0]), reverse=True)
    pools: dict[str, Pool] = {}

    async def relay_wire(request: web.Request, base: str, rest: str) -> web.StreamResponse:
        pool = pools.get(base)
        if pool is None:
            pool = pools[base] = Pool(
                base, {}, max_connections=512, connect_s=10, between_chunks_s=600
            )
        body = await request.read()
        reply = await pool.post("/" + rest, body, "application/json", first_byte_s=600, total_s=600)
        try:
            if reply.content_type == "text/event-stream":
                response = web.StreamResponse(status=reply.status)
                response.content_type = "text/event-stream"
                await response.prepare(request)
                async for chunk in reply.chunks():
                    await response.write(chunk)
                await response.write_eof()
                return response
            data = await reply.read(1 << 30)
            reply.release()
            return web.Response(status=reply.status, body=data, content_type="application/json")
        finally:
            reply.close()

    async def proxy(request: web.Request) -> web.StreamResponse:
        path = request.raw_path
        for prefix, base in ordered:
            if path.startswith(prefix):
                url = base + path[len(prefix) :]
                break
        else:
            return web.Response(status=404)
        if client == "wire":
            return await relay_wire(request, base, path[len(prefix) :])
        body = await request.read()
        session = request.app[SESSION]
        async with session.post(
            url, data=body, headers={"Content-Type": "application/json"}
        ) as upstream:
            if upstream.content_type == "text/event-stream":
                response = web.StreamResponse(status=upstream.status)
                response.content_type = "text/event-stream"
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
                return response
            data = await upstream.read()
            return web.Response(status=upstream.status, body=data, content_type="application/json")

    async def open_session(app: web.Application) -> None:
        app[SESSION] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=512, limit_per_host=512, keepalive_timeout=30),
            timeout=aiohttp.ClientTimeout(total=600),
            auto_decompress=False,
        )

    async def close_session(app: web.Application) -> None:
        await app[SESSION].close()
        for pool in pools.values():
            await pool.close()

    app = web.Application()
    app.on_startup.append(open_session)
    app.on_cleanup.append(close_session)
    app.router.add_route("POST", "/{tail:.*}", proxy)
    return app


async def serve(
    host: str,
    port: int,
    routes: list[tuple[str, str]],
    young_gc_threshold: int = 0,
    client: str = "aiohttp",
) -> None:
    runner = web.AppRunner(make_app(routes, client), access_log=None, handler_cancellation=True)
    await runner.setup()
    await web.TCPSite(runner, host, port, backlog=1024).start()
    if young_gc_threshold > 0:
        gc.collect()
        gc.freeze()
        gc.set_threshold(young_gc_threshold, *gc.get_threshold()[1:])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    routes = []
    for spec in args.route:
        prefix, _, base = spec.partition("=")
        if not prefix or not base:
            print(f"floor: bad --route {spec!r} (want PREFIX=BASE_URL)", file=sys.stderr)
            return 2
        routes.append((prefix, base))
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    print(f"floor: listening on http://{args.host}:{args.port}", file=sys.stderr, flush=True)
    asyncio.run(serve(args.host, args.port, routes, args.young_gc_threshold, args.client))
    return 0


if __name__ == "__main__":
    sys.exit(main())

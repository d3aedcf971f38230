"""Bastion's OpenAI-compatible simulator alone (no Riva server), for paced streams.

python -m bench.sim --port 8700 --tokens-per-second 100 --first-token-ms 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from bastion.simulator import SimulatorOptions
from bastion.simulator import serve as serve_simulator


async def _serve(port: int, options: SimulatorOptions) -> None:
    task = asyncio.ensure_future(serve_simulator("127.0.0.1", port, options))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sim", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tokens-per-second", type=float, default=100.0)
    parser.add_argument("--first-token-ms", type=float, default=20.0)
    args = parser.parse_args(argv)
    options = SimulatorOptions(
        tokens_per_second=args.tokens_per_second, first_token_ms=args.first_token_ms
    )
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(_serve(args.port, options))
    return 0


if __name__ == "__main__":
    sys.exit(main())

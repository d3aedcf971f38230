"""Start and stop the simulated Riva server (gRPC, plaintext) in the running event loop."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import grpc
from riva.client.proto import riva_tts_pb2_grpc

from bastion.simulator.riva.options import RivaOptions
from bastion.simulator.riva.service import JOURNAL_SIZE, Journal, RivaService

SHUTDOWN_GRACE_S = 0.5
SERVER_OPTIONS: tuple[tuple[str, Any], ...] = (
    # gRPC binds with SO_REUSEPORT by default, so a second server on a taken port would start
    # and share it silently; refuse instead, as the HTTP simulator does.
    ("grpc.so_reuseport", 0),
)


@dataclass
class RivaSimulator:
    server: grpc.aio.Server
    host: str
    port: int
    options: RivaOptions
    journal: Journal = field(default_factory=lambda: deque(maxlen=JOURNAL_SIZE))
    tls: bool = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'grpcs' if self.tls else 'grpc'}://{host}:{self.port}"

    async def stop(self, grace: float | None = SHUTDOWN_GRACE_S) -> None:
        await self.server.stop(grace)


async def start_riva(
    host: str = "127.0.0.1",
    port: int = 0,
    options: RivaOptions | None = None,
    *,
    tls: tuple[bytes, bytes] | None = None,
) -> RivaSimulator:
    """A running simulator; port 0 picks a free one (see ``.port``).  With ``tls`` (a PEM
    private key and certificate chain) it serves gRPC over TLS, for ``grpcs://`` clients."""
    options = options or RivaOptions()
    options.status()  # a bad fault_status fails here, not at the first request
    journal: Journal = deque(maxlen=JOURNAL_SIZE)
    server = grpc.aio.server(options=SERVER_OPTIONS)
    riva_tts_pb2_grpc.add_RivaSpeechSynthesisServicer_to_server(
        RivaService(options, journal), server
    )
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        if tls is None:
            bound = server.add_insecure_port(address)
        else:
            bound = server.add_secure_port(address, grpc.ssl_server_credentials([tls]))
    except RuntimeError as exc:  # grpc reports a failed bind this way
        raise OSError(f"cannot listen on {address}: {exc}") from None
    if not bound:
        raise OSError(f"cannot listen on {address}")
    await server.start()
    return RivaSimulator(server, host, bound, options, journal, tls=tls is not None)


async def serve_riva(host: str, port: int, options: RivaOptions) -> None:
    """Serve until cancelled; prints nothing (the caller reports the address)."""
    simulator = await start_riva(host, port, options)
    try:
        await asyncio.Event().wait()
    finally:
        await simulator.stop()

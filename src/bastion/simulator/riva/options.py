"""Run-time options of the Riva simulator; the object stays live, so tests switch faults by
assigning its fields while the server runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import grpc

Fault = Literal["error", "stall"]
Voice = Literal["auto", "espeak", "tones"]

FAULTS: tuple[str, ...] = ("error", "stall")
VOICES: tuple[str, ...] = ("auto", "espeak", "tones")


@dataclass(slots=True)  # mutable: faults can be switched at run time
class RivaOptions:
    fault: Fault | None = None
    """``error``: answer ``fault_status``; ``stall``: never answer (until the caller's deadline)."""
    fault_status: str = "UNAVAILABLE"
    """The gRPC status name an ``error`` fault answers with (e.g. INTERNAL, RESOURCE_EXHAUSTED)."""
    fault_rate: float = 1.0
    """Probability that a synthesis call gets the fault."""
    voice: Voice = "auto"
    """``espeak``: real speech from espeak-ng; ``tones``: the synthetic signal; ``auto``: espeak-ng
    when the binary is installed, tones otherwise."""
    strict_voices: bool = True
    """Refuse voices and languages outside the simulator's voice list with INVALID_ARGUMENT, as
    Riva does; False accepts any non-empty voice for any language."""
    api_key: str | None = None
    """If set, require ``authorization: Bearer <api_key>`` metadata (UNAUTHENTICATED otherwise)."""

    def status(self) -> grpc.StatusCode:
        return status_code(self.fault_status)


def status_code(name: str) -> grpc.StatusCode:
    """A gRPC status by name; the error names the choices."""
    try:
        code = grpc.StatusCode[name.upper()]
    except KeyError:
        code = grpc.StatusCode.OK
    if code is grpc.StatusCode.OK:
        choices = ", ".join(c.name for c in grpc.StatusCode if c is not grpc.StatusCode.OK)
        raise ValueError(f"fault_status must be a gRPC status name other than OK: {choices}")
    return code

"""The simulated NVIDIA Riva text-to-speech server (gRPC ``RivaSpeechSynthesis``).

`bastion simulate` serves it beside the OpenAI-compatible simulator (``--riva-port``, default
8701); tests start it in their own event loop with :func:`start_riva` on port 0.
"""

from bastion.simulator.riva.options import RivaOptions
from bastion.simulator.riva.server import RivaSimulator, serve_riva, start_riva

__all__ = ["RivaOptions", "RivaSimulator", "serve_riva", "start_riva"]

"""The upstream simulator behind `bastion simulate`; see bastion.simulator.app."""

from bastion.simulator.app import create_app, serve
from bastion.simulator.options import SimulatorOptions

__all__ = ["SimulatorOptions", "create_app", "serve"]

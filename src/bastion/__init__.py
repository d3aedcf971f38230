"""Bastion: a self-hostable, OpenAI-compatible, multi-tenant AI API gateway."""

__version__ = "0.1.0"

"""``${VAR}`` and ``${VAR:-default}`` in configuration values, resolved against one environment."""

from __future__ import annotations

import re
from collections.abc import Mapping

_PATTERN = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


class MissingVariableError(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def interpolate(text: str, environ: Mapping[str, str]) -> str:
    """Replace every reference; ``$$`` is a literal ``$``.  An unset variable without a
    default raises :class:`MissingVariableError`; an empty one counts as set (as in shells'
    ``${VAR-default}``), while ``:-`` also replaces an empty value (as ``${VAR:-default}``)."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        value = environ.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                raise MissingVariableError(name)
            return default
        return value

    return _PATTERN.sub(replace, text)

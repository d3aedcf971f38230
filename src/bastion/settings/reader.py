"""A strict reader over a parsed TOML document: every error names the file and the key path.

Unknown keys are errors too (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from bastion.errors import ConfigError
from bastion.settings.interpolate import MissingVariableError, interpolate

T = TypeVar("T")
_MISSING: Any = object()


class Table:
    """A view of one TOML table that remembers where it is and which keys were used."""

    def __init__(
        self, data: Mapping[str, Any], path: str, file: str, environ: Mapping[str, str]
    ) -> None:
        self._data = data
        self.path = path
        self.file = file
        self._environ = environ
        self._used: set[str] = set()

    # -- errors ---------------------------------------------------------------------------

    def where(self, key: str | None = None) -> str:
        if key is None:
            return self.path or "(top level)"
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str | None, problem: str) -> ConfigError:
        return ConfigError(f"{self.file}: {self.where(key)}: {problem}")

    # -- access ---------------------------------------------------------------------------

    def has(self, key: str) -> bool:
        return key in self._data

    def names(self) -> list[str]:
        return list(self._data)

    def _raw(self, key: str, default: Any) -> Any:
        self._used.add(key)
        if key not in self._data:
            if default is _MISSING:
                raise self.error(key, "is required")
            return default
        value = self._data[key]
        if isinstance(value, str):
            try:
                return interpolate(value, self._environ)
            except MissingVariableError as exc:
                raise self.error(
                    key,
                    f"environment variable {exc.name} is not set (use ${{{exc.name}:-default}})",
                ) from None
        return value

    def text(self, key: str, default: Any = _MISSING, *, choices: tuple[str, ...] = ()) -> Any:
        value = self._raw(key, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, str):
            raise self.error(key, f"must be a string, not {_kind(value)}")
        if choices and value not in choices:
            raise self.error(key, f"must be one of {', '.join(choices)} (got {value!r})")
        return value

    def integer(self, key: str, default: Any = _MISSING, *, min: int | None = None) -> Any:
        value = self._raw(key, default)
        if value is default and default is not _MISSING:
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)  # an interpolated ${VAR} arrives as text
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"must be an integer, not {_kind(value)}")
        if min is not None and value < min:
            raise self.error(key, f"must be at least {min} (got {value})")
        return value

    def number(self, key: str, default: Any = _MISSING, *, min: float | None = None) -> Any:
        value = self._raw(key, default)
        if value is default and default is not _MISSING:
            return value
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise self.error(key, f"must be a number (got {value!r})") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, f"must be a number, not {_kind(value)}")
        if min is not None and value < min:
            raise self.error(key, f"must be at least {min} (got {value})")
        return float(value)

    def flag(self, key: str, default: Any = _MISSING) -> Any:
        value = self._raw(key, default)
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
            return value.lower() in ("true", "1")
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false, not {_kind(value)}")
        return value

    def str_list(self, key: str, default: Any = _MISSING) -> Any:
        value = self._raw(key, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(key, "must be a list of strings")
        try:
            return [interpolate(v, self._environ) for v in value]
        except MissingVariableError as exc:
            raise self.error(key, f"environment variable {exc.name} is not set") from None

    def networks(self, key: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        out = []
        for text in self.str_list(key, []):
            try:
                out.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                raise self.error(key, f"{text!r} is not an IP address or network") from None
        return tuple(out)

    def converted(self, key: str, convert: Callable[[Any], T], default: Any = _MISSING) -> T:
        value = self._raw(key, default)
        if value is default and default is not _MISSING:
            return value  # type: ignore[no-any-return]
        try:
            return convert(value)
        except (ValueError, TypeError) as exc:
            raise self.error(key, str(exc)) from None

    def table(self, key: str, *, required: bool = False) -> Table:
        self._used.add(key)
        value = self._data.get(key, _MISSING)
        if value is _MISSING:
            if required:
                raise self.error(key, "is required")
            value = {}
        if not isinstance(value, Mapping):
            raise self.error(key, f"must be a table, not {_kind(value)}")
        return Table(value, self.where(key), self.file, self._environ)

    def tables(self, key: str) -> dict[str, Table]:
        """A table of named sub-tables (``[models."id"]``)."""
        outer = self.table(key)
        return {name: outer.table(name) for name in outer.names()}

    def table_list(self, key: str) -> list[Table]:
        self._used.add(key)
        value = self._data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            raise self.error(key, "must be a list of tables")
        return [
            Table(v, f"{self.where(key)}[{i}]", self.file, self._environ)
            for i, v in enumerate(value)
        ]

    def string_map(self, key: str) -> dict[str, str]:
        table = self.table(key)
        return {name: table.text(name) for name in table.names()}

    def done(self) -> None:
        """Reject keys nobody asked for."""
        unknown = sorted(set(self._data) - self._used)
        if unknown:
            raise self.error(unknown[0], "is not a known setting")


def _kind(value: object) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)

"""Structured logs: one JSON object per line, secrets redacted on the way out.

Redaction is a last line of defence: code never logs a key, password or OTP on purpose, and
this filter masks anything that still looks like one (a ``qbt_`` key, a bearer token, a
``password``/``otp``/``code``/``secret`` field).
"""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import Any

import orjson

from bastion.settings import LogSettings

_KEY = re.compile(r"qbt_[0-9A-Za-z]{8,}")
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"',]+")
_BASIC = re.compile(r"(?i)(basic\s+)[A-Za-z0-9+/=]{8,}")
_URL_PASSWORD = re.compile(r"([a-z][a-z0-9+.-]*://[^:/@\s\"']*:)[^@\s\"']+@")
SECRET_FIELDS = frozenset(
    {"password", "otp", "code", "secret", "token", "authorization", "api_key", "key_secret"}
)
QUIET_BELOW_INFO = ("aiosqlite", "asyncpg", "redis", "hpack")
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def redact_text(text: str) -> str:
    """Keys, bearer and Basic credentials, and passwords in URLs (``redis://:pw@host``)."""
    text = _BEARER.sub(r"\1[redacted]", _KEY.sub("qbt_[redacted]", text))
    return _URL_PASSWORD.sub(r"\1[redacted]@", _BASIC.sub(r"\1[redacted]", text))


def redact(value: Any, field: str = "") -> Any:
    if field.lower() in SECRET_FIELDS:
        return "[redacted]"
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def _by_name(value: Any, field: str) -> Any:
    """Secret-named fields masked, at any depth; text is left for one pass over the line."""
    if field.lower() in SECRET_FIELDS:
        return "[redacted]"
    if isinstance(value, dict):
        return {k: _by_name(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_by_name(v, "") for v in value]
    return value


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name, value in record.__dict__.items():
            if name not in _STANDARD and name[0] != "_":
                entry[name] = _by_name(value, name)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        # One redaction pass over the serialised line (cheaper than one per field, and the
        # patterns cannot straddle a JSON quote, so the line stays valid JSON).
        return redact_text(orjson.dumps(entry, default=str).decode())


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = {
            k: redact(v, k)
            for k, v in record.__dict__.items()
            if k not in _STANDARD and not k.startswith("_")
        }
        line = f"{record.levelname.lower():7} {record.name}: {redact_text(record.getMessage())}"
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        if record.exc_info:
            line += "\n" + redact_text(self.formatException(record.exc_info))
        return line


def configure(settings: LogSettings, stream: Any = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level)
    # aiohttp's own access log would duplicate ours and knows nothing of redaction
    logging.getLogger("aiohttp.access").disabled = True
    # Drivers that log every statement with its parameters at DEBUG (emails, phone numbers,
    # password hashes): never below INFO, whatever the level asked for.
    for name in QUIET_BELOW_INFO:
        logging.getLogger(name).setLevel(max(logging.getLevelName(settings.level), logging.INFO))

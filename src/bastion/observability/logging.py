"""Structured logs: one JSON object per line, secrets redacted on the way out.

Redaction is a last line of defence: code never logs a key, password or OTP on purpose, and
this filter masks anything that still looks like one (a ``qbt_`` key, a bearer token, a
``password``/``otp``/``code``/``secret`` field).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import re
import sys
import time
import warnings
from typing import Any

import orjson
from aiohttp import BadContentDispositionHeader, BadContentDispositionParam

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


_NESTED = (dict, list, tuple)
_SEQUENCES = (list, tuple)
"""Tuples of types, not ``list | tuple`` unions: a union is rebuilt at every evaluation (3×
slower in ``isinstance``, and the access line asks it of every field)."""


def _maybe_secret(text: str) -> bool:
    """What every pattern above needs, as substring tests (most lines hold none of it): about
    six times faster than one regex search with the same alternatives, on an access line."""
    if "qbt_" in text or "://" in text:
        return True
    lower = text.lower()
    return "bearer" in lower or "basic" in lower


def redact_text(text: str) -> str:
    """Keys, bearer and Basic credentials, and passwords in URLs (``redis://:pw@host``)."""
    if not _maybe_secret(text):
        return text
    text = _BEARER.sub(r"\1[redacted]", _KEY.sub("qbt_[redacted]", text))
    return _URL_PASSWORD.sub(r"\1[redacted]@", _BASIC.sub(r"\1[redacted]", text))


def redact(value: Any, field: str = "") -> Any:
    if field.lower() in SECRET_FIELDS:
        return "[redacted]"
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, _SEQUENCES):
        return [redact(v) for v in value]
    return value


_NAME_IS_SECRET: dict[str, bool] = {}


def _secret_name(name: str) -> bool:
    """``name.lower() in SECRET_FIELDS``, remembered: log lines reuse a few dozen names."""
    known = _NAME_IS_SECRET.get(name)
    if known is None:
        known = name.lower() in SECRET_FIELDS
        if len(_NAME_IS_SECRET) < 4096:
            _NAME_IS_SECRET[name] = known
    return known


def _by_name(value: Any, field: str) -> Any:
    """Secret-named fields masked, at any depth; text is left for one pass over the line."""
    if _secret_name(field):
        return "[redacted]"
    if isinstance(value, dict):
        return {k: _by_name(v, str(k)) for k, v in value.items()}
    if isinstance(value, _SEQUENCES):
        return [_by_name(v, "") for v in value]
    return value


class JsonFormatter(logging.Formatter):
    _second = -1
    _stamp = ""
    _ms = -1
    _ms_stamp = ""

    def _timestamp(self, created: float) -> str:
        ms = int(created * 1000)
        if ms == self._ms:  # a busy gateway logs several lines a millisecond
            return self._ms_stamp
        second = ms // 1000
        if second != self._second:  # one strftime per second of logging, not per line
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        self._ms, self._ms_stamp = ms, f"{self._stamp}.{ms % 1000:03d}Z"
        return self._ms_stamp

    def format(self, record: logging.LogRecord) -> str:
        extras = {
            name: value
            for name, value in record.__dict__.items()
            if name not in _STANDARD and name[0] != "_"
        }
        if record.exc_info:
            extras["exc"] = self.formatException(record.exc_info)
        return self.line(record.created, record.levelname, record.name, record.getMessage(), extras)

    def line(
        self, created: float, level: str, logger: str, msg: str, extras: dict[str, Any]
    ) -> str:
        entry: dict[str, Any] = {
            "ts": self._timestamp(created),
            "level": level.lower(),
            "logger": logger,
            "msg": msg,
        }
        secret_names = _NAME_IS_SECRET
        for name, value in extras.items():
            secret = secret_names.get(name)  # inline: a call per field costs more than its work
            if secret is None:
                secret = _secret_name(name)
            if secret:
                entry[name] = "[redacted]"
            elif isinstance(value, _NESTED):
                entry[name] = _by_name(value, name)
            else:
                entry[name] = value
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


class BufferedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes lines in batches: one write per ~50 ms of traffic instead of one per request.

    Warnings and errors flush at once, and so does a full buffer; a quiet moment flushes
    what is pending through a timer on the running event loop (or at once without one), so
    a line waits at most ``FLUSH_AFTER_S``.
    """

    FLUSH_AFTER_S = 0.05
    MAX_PENDING = 64 * 1024

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        self._pending: list[str] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        self._pending.append(line)
        self._size += len(line)
        if record.levelno >= logging.WARNING or self._size >= self.MAX_PENDING:
            self.flush()
            return
        if self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._timer = loop.call_later(self.FLUSH_AFTER_S, self.flush)

    def emit_line(self, line: str) -> None:
        """Queue a line formatted elsewhere (the access log's fast path)."""
        self._pending.append(line)
        self._size += len(line)
        if self._size >= self.MAX_PENDING:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.FLUSH_AFTER_S, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pending:
            text, self._pending, self._size = "".join(self._pending), [], 0
            self.acquire()
            # a closed or broken stream must not take requests down
            try:
                with contextlib.suppress(Exception):
                    self.stream.write(text)
                    self.stream.flush()
            finally:
                self.release()


_fast: BufferedStreamHandler | None = None
"""The handler :func:`configure` installed, when its lines are JSON."""


def info_line(logger: logging.Logger, msg: str, fields: dict[str, Any]) -> None:
    """``logger.info(msg, extra=fields)``, the same line, without a LogRecord, the logging
    machinery's locks and the formatter's field scan: one per request on the hot path.
    Only while the configured JSON handler is the one place the line can go (a handler
    attached elsewhere, e.g. by a test, gets the ordinary path)."""
    handler = _fast
    root = logging.root
    if (
        handler is None
        or logger.handlers
        or len(root.handlers) != 1
        or root.handlers[0] is not handler
        or not logger.isEnabledFor(logging.INFO)
        or not isinstance(handler.formatter, JsonFormatter)
    ):
        logger.info(msg, extra=fields)
        return
    try:
        line = handler.formatter.line(time.time(), "INFO", logger.name, msg, fields)
    except Exception:
        logger.info(msg, extra=fields)
        return
    handler.emit_line(line + handler.terminator)


def ignore_client_warnings() -> None:
    """aiohttp warns once per distinct malformed multipart ``Content-Disposition`` a client
    sends: the client's text in a line on stderr and an entry in a registry that never
    shrinks, so one upload of many crafted parts grew both without bound.  The header is read
    as absent either way and the request answered; the warning tells the operator nothing."""
    for category in (BadContentDispositionHeader, BadContentDispositionParam):
        warnings.filterwarnings("ignore", category=category)


def configure(settings: LogSettings, stream: Any = None) -> None:
    global _fast
    ignore_client_warnings()
    handler = BufferedStreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.format == "json" else TextFormatter())
    _fast = handler if settings.format == "json" else None
    root = logging.getLogger()
    for old in root.handlers:
        old.flush()
    root.handlers[:] = [handler]
    atexit.register(handler.flush)
    root.setLevel(settings.level)
    # Nothing Bastion writes uses a record's thread or process names: skip looking them up
    # for every line.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    # aiohttp's own access log would duplicate ours and knows nothing of redaction
    logging.getLogger("aiohttp.access").disabled = True
    # Drivers that log every statement with its parameters at DEBUG (emails, phone numbers,
    # password hashes): never below INFO, whatever the level asked for.
    for name in QUIET_BELOW_INFO:
        logging.getLogger(name).setLevel(max(logging.getLevelName(settings.level), logging.INFO))

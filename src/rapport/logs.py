"""Log lines that keep their structured fields.

Code logs a fixed message and puts values in `extra=` (`log.exception("session failed",
extra={"session_id": ...})`); the standard formatter prints only the message and drops them.
This one writes them after the message as key=value, on the same line, so a line can be grepped
by field and split by a log shipper; an exception's traceback still follows on its own lines.
`JsonFormatter` (setting `logging.format: json`) writes one JSON object per line instead, for log
shippers that parse JSON: time, level, logger, message, the fields, and any traceback as a string.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

# Attributes every LogRecord has (and those the formatter adds): anything else came from extra=.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}

QUIET = ("alembic", "httpx", "livekit")
"""Libraries logged at WARNING only. alembic: a line per plugin (at import) and per migration
step; httpx: a line per webhook delivery; livekit: the SDK's lines per track."""


def fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record's `extra` fields, in the order given."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


def _value(v: object) -> str:
    s = v if isinstance(v, str) else str(v)
    if not s or any(c.isspace() or c in '"=' for c in s):
        return json.dumps(s, ensure_ascii=False)  # quoted, with newlines escaped
    return s


class FieldsFormatter(logging.Formatter):
    """`<fmt with the message> key=value ...`, one line; then the traceback, if any."""

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage().replace("\n", "\\n")
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record)
        extra = " ".join(f"{k}={_value(v)}" for k, v in fields(record).items())
        if extra:
            line = f"{line} {extra}"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line = f"{line}\n{record.exc_text}"
        if record.stack_info:
            line = f"{line}\n{self.formatStack(record.stack_info)}"
        return line


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message", <fields>..., "exception"?, "stack"?}` on one line.

    time is ISO 8601 UTC with milliseconds; a field that is not JSON is written as its str(); a
    field named like one of the keys above is written as `field_<name>` (the record's own wins).
    """

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for k, v in fields(record).items():
            out[f"field_{k}" if k in _JSON_KEYS else k] = v
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str)


_JSON_KEYS = frozenset({"time", "level", "logger", "message", "exception", "stack"})

LogFormat = Literal["text", "json"]


class _Handler(logging.StreamHandler[TextIO]):
    """Marks the handler `configure` installed, so that configuring again replaces it."""


def configure(level: int, stream: TextIO | None = None, fmt: LogFormat = "text") -> None:
    """Root logging for a `rapport` command: one handler (stderr by default) with the fields, as
    text or JSON lines. Configuring again replaces it; handlers installed by others (a test
    runner's) are left in place."""
    handler = _Handler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else FieldsFormatter(FORMAT))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))

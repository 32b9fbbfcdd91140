"""Logging for journald and log shippers: one event per line on stdout.

Every line carries a level, a component and the ids that matter (client, draft, message_id), passed
as `extra={"client": ..., "draft": ..., "message_id": ...}`. Secrets and message bodies are never
logged: callers pass ids, not content, and every formatter masks any registered secret that slips
into a formatted line anyway.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from daemon.adapters.redaction import mask as _mask
from daemon.adapters.redaction import register_secret

__all__ = ["get_logger", "register_secret", "setup_logging"]

CONTEXT_KEYS = ("client", "draft", "message_id", "folder", "uid", "outbox", "deadline", "person")

def _context(record: logging.LogRecord) -> dict[str, object]:
    return {key: getattr(record, key) for key in CONTEXT_KEYS if getattr(record, key, None) is not None}


class TextFormatter(logging.Formatter):
    """`LEVEL component: message key=value ...`; journald adds its own timestamp."""

    def __init__(self, with_time: bool = False) -> None:
        super().__init__()
        self.with_time = with_time

    def format(self, record: logging.LogRecord) -> str:
        component = record.name.removeprefix("parting.") or "parting"
        # one event per line for journald: a message with line breaks (a command's help) is escaped
        message = record.getMessage().replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
        parts = [f"{record.levelname:<7} {component}: {message}"]
        parts += [f"{key}={value}" for key, value in _context(record).items()]
        line = " ".join(parts)
        if self.with_time:
            line = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ ") + line
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return _mask(line)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "component": record.name.removeprefix("parting.") or "parting",
            "message": record.getMessage(),
            **_context(record),
        }
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return _mask(json.dumps(event, default=str, ensure_ascii=False))


def setup_logging(fmt: str = "text", level: str = "info", *, stream=None) -> None:
    """Send parting's logs to stdout, one event per line. `fmt` is "text" or "json"."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter(with_time=sys.stdout.isatty()))
    root = logging.getLogger("parting")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def get_logger(component: str) -> logging.Logger:
    return logging.getLogger(f"parting.{component}")

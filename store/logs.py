"""Logs as JSON lines on stderr, one object per event, with secrets masked.

API and worker processes log through here: a request or a job is one line whose fields
(job_id, model_version, durations) a log pipeline can index without parsing text.
Passwords in URLs and bearer tokens (a header or `?access_token=`) are masked in every message
and traceback, whoever logged them.
"""

from __future__ import annotations

import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

MASK = "***"
_SECRETS = (
    # scheme://user:password@host — the password part
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@", re.IGNORECASE), rf"\1{MASK}@"),
    # redis://host/0?password=... — the query form redis-py also accepts
    (re.compile(r"([?&]password=)[^&\s]+", re.IGNORECASE), rf"\1{MASK}"),
    # Authorization: Bearer <key>
    (re.compile(r"(\bBearer\s+)\S+", re.IGNORECASE), rf"\1{MASK}"),
    # ?access_token=<key>: how a browser's WebSocket or EventSource sends the key
    (re.compile(r"([?&]access_token=)[^&\s]+", re.IGNORECASE), rf"\1{MASK}"),
)


def mask(text: str) -> str:
    """Return `text` with URL passwords and bearer tokens replaced by ***."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object: time, level, logger, message, then its fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as a single line of JSON."""
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": mask(record.getMessage()),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            line["error"] = mask(self.formatException(record.exc_info))
        return orjson.dumps(line, default=str).decode()


def event(logger: logging.Logger, message: str, **fields: Any) -> None:
    """Log `message` at INFO with `fields` as JSON keys; fields that are None are left out."""
    if logger.isEnabledFor(logging.INFO):
        present = {name: value for name, value in fields.items() if value is not None}
        logger.info(message, extra={"fields": present})


def configure(level: str | int = "INFO") -> None:
    """Send every record to stderr as a JSON line, unless the process set up logging already.

    Like `logging.basicConfig`, it leaves a root logger that has handlers alone (a test
    runner's, or an application embedding the API).
    """
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)

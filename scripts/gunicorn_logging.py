"""Gunicorn's own log lines (listening, booting workers, shutting down) as JSON lines.

The service logs one JSON object per line (store.logs); gunicorn's master and its workers
log through `gunicorn.error` in text of their own. `digits api` passes this class as
gunicorn's `--logger-class`, so a log pipeline reads one format from every process. Its
access log stays off: the API writes its own access lines (api.access).
"""

from __future__ import annotations

from gunicorn import glogging
from gunicorn.config import Config

from store.logs import JsonFormatter


class JsonLogger(glogging.Logger):
    """Gunicorn's logger, its handlers formatting each record as store.logs does."""

    def setup(self, cfg: Config) -> None:
        """Set gunicorn's handlers up as usual, then make them write JSON."""
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(JsonFormatter())

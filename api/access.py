"""Per request: one JSON log line and the request metrics.

The line has the method, path, route, status, duration and, when known, the job or
batch id, the model version, the rows carried and the id of the API key (a hash, never
the key). Views add what only they know with `note(...)`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Flask, Response, g, request

from api import metrics
from store import logs

log = logging.getLogger(__name__)

# Path parameters that name what the request is about, and the log field for each.
VIEW_ARGS = {"job_id": "job_id", "batch_id": "batch_id", "version": "model_version"}


def note(**fields: Any) -> None:
    """Add fields (job_id, batch_id, model_version, rows) to this request's log line."""
    g.setdefault("access_fields", {}).update(fields)


def register(app: Flask) -> None:
    """Time every request; log and count it once answered."""
    app.before_request(_start)
    app.after_request(_finish)


def _start() -> None:
    g.access_started = time.perf_counter()


def _finish(response: Response) -> Response:
    seconds = time.perf_counter() - g.get("access_started", time.perf_counter())
    route = request.url_rule.rule if request.url_rule is not None else "unmatched"
    fields: dict[str, Any] = {
        VIEW_ARGS[name]: value
        for name, value in (request.view_args or {}).items()
        if name in VIEW_ARGS
    }
    fields |= g.get("access_fields", {})
    metrics.observe(request.method, route, response.status_code, seconds, fields.get("rows"))
    logs.event(
        log,
        "request",
        method=request.method,
        path=request.path,
        route=route,
        status=response.status_code,
        duration_ms=round(seconds * 1000, 3),
        key_id=g.get("key_id"),
        **fields,
    )
    return response

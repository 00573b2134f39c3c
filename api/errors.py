"""One JSON shape for every error: `{"error": {"code": ..., "message": ...}}`."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

import orjson
from flask import Flask, Response, current_app, request
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError as RedisOutOfMemoryError
from redis.exceptions import TimeoutError as RedisTimeoutError
from werkzeug.exceptions import (
    HTTPException,
    MethodNotAllowed,
    NotFound,
    RequestEntityTooLarge,
)
from werkzeug.routing.exceptions import WebsocketMismatch

from api.encoding import OPTIONS

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5  # how long a client should wait when Redis is unreachable
# How a worker words the failure of a job that found no model it can load (worker.cache.NoModel).
NO_MODEL = "NoModel:"


class ApiError(Exception):
    """An error a client caused or must handle: HTTP status, machine code, human message.

    `retry_after` (seconds) becomes a Retry-After header, for 429 and 503; `headers` are
    added to the response as they are (e.g. WWW-Authenticate on 401).
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        retry_after: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        if retry_after is not None:
            self.headers["Retry-After"] = str(max(1, int(retry_after)))


def job_failure(message: str) -> ApiError:
    """Map a failed job's message to an error: 503 while no model can serve, else 500."""
    if message.startswith(NO_MODEL):
        return ApiError(503, "no_model", message, retry_after=RETRY_AFTER_SECONDS)
    return ApiError(500, "job_failed", message)


def error_response(status: int, code: str, message: str, **extra: Any) -> Response:
    """Build the JSON error response, with any `extra` top-level fields."""
    body = {"error": {"code": code, "message": message}, **extra}
    return Response(orjson.dumps(body, option=OPTIONS), status, mimetype="application/json")


def handle(error: Exception) -> Response:
    """Turn any exception raised by a view into the JSON error shape."""
    if isinstance(error, ApiError):
        response = error_response(error.status, error.code, error.message)
        response.headers.update(error.headers)
        return response
    if isinstance(error, HTTPException):
        return _http_error(error)
    if isinstance(error, RedisConnectionError | RedisTimeoutError):
        log.warning("redis unavailable: %s", error)
        response = error_response(503, "redis_unavailable", "the queue is unreachable; retry")
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    if isinstance(error, RedisOutOfMemoryError):  # maxmemory with noeviction: refuse, keep data
        log.error("redis is full: %s", error)
        response = error_response(503, "redis_full", "the queue has no room left; retry later")
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    log.exception("unhandled error")
    return error_response(500, "internal_error", "internal server error")


def _http_error(error: HTTPException) -> Response:
    status = error.code or 500
    if isinstance(error, RequestEntityTooLarge):
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        message = f"the request body is larger than the limit of {limit} bytes"
        return error_response(status, "too_large", message)
    response = error_response(status, _code(error.name), _describe(error))
    # Keep what the protocol needs, e.g. Allow on 405 and Retry-After on 503.
    for name, value in error.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def _describe(error: HTTPException) -> str:
    if isinstance(error, NotFound) and request.url_rule is None:
        return f"no route {request.method} {request.path}"
    if isinstance(error, WebsocketMismatch):
        return f"{request.path} is a WebSocket: connect with Upgrade: websocket (ws:// or wss://)"
    if isinstance(error, MethodNotAllowed):
        allowed = ", ".join(sorted(error.valid_methods or []))
        return f"{request.method} is not allowed on {request.path}; allowed: {allowed}"
    return error.description or error.name


def _code(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def register(app: Flask) -> None:
    """Install `handle` for every exception."""
    app.register_error_handler(Exception, handle)

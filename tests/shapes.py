"""Check every JSON answer of an app against the shape its view declares (`api.openapi`).

The `app` fixture installs it, so each API test is also a drift test: a view that answers a
field its shape does not declare, a value out of its declared range, or a status it does
not declare, fails the request with AssertionError (TESTING propagates it).
"""

from __future__ import annotations

import functools
from typing import Any

from flask import Flask, Response, current_app, request
from pydantic import TypeAdapter, ValidationError

from api import openapi, schemas

# Statuses any /v1 route may answer besides its own: keys and rate limits (api.auth), a bug.
ANY_ROUTE = {401, 403, 429, 500}


@functools.cache
def _adapter(shape: Any) -> TypeAdapter[Any]:
    return TypeAdapter(shape)


def install(app: Flask) -> Flask:
    """Check each answer of `app` as it leaves; return the app."""
    app.extensions["tests.checked"] = set()
    app.after_request(check)
    return app


def checked(app: Flask) -> set[tuple[str, int]]:
    """Return the (endpoint, status) pairs of the answers `app` has had checked."""
    found: set[tuple[str, int]] = app.extensions["tests.checked"]
    return found


def check(response: Response) -> Response:
    """Raise AssertionError when the answer is not what its view declares."""
    view = current_app.view_functions.get(request.endpoint or "")
    declared = getattr(view, openapi.ATTRIBUTE, None)
    status = response.status_code
    where = f"{request.method} {request.path} answered {status}"
    if declared is not None:
        allowed = {*declared.responses, *declared.errors, *ANY_ROUTE}
        assert status in allowed, f"{where}, which {request.endpoint} does not declare"
    shape = _shape(declared, status)
    if shape is None or response.mimetype != "application/json" or response.is_streamed:
        return response
    try:
        _adapter(shape).validate_json(response.get_data(), strict=True)
    except ValidationError as error:
        raise AssertionError(f"{where}, not its declared shape: {error}") from None
    current_app.extensions["tests.checked"].add((request.endpoint, status))
    return response


def _shape(declared: openapi.Operation | None, status: int) -> Any:
    if status >= 400:
        return schemas.Error
    if declared is None:
        return None
    body = declared.responses[status][1]
    return body.get("application/json") if isinstance(body, dict) else body

"""Streams over HTTP: create one, add inputs (NDJSON or CSV), follow its answers (NDJSON or SSE).

The stream itself is Redis's (`store.streams`): these routes are for producers and consumers
that speak HTTP rather than Redis, and see the same entries as those that XADD and XREAD.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from typing import Any

import orjson
from flask import Blueprint, Response, request, url_for

from api import access, pixel_encoding, stream_input, stream_output
from api.errors import ApiError
from api.payload import parse_wait
from api.services import Services, services
from store import streams

bp = Blueprint("streams", __name__, url_prefix="/v1")

NDJSON_TYPES = {"application/x-ndjson", "application/jsonl", "application/json-lines"}
CSV_TYPES = {"text/csv", "application/csv"}
MAX_COUNT = 1_000_000_000


@bp.post("/streams/<name>")
def create_stream(name: str) -> Any:
    """Create stream `name` (201), or confirm it exists (200)."""
    found = services()
    maxlen = _maxlen(found.config["DIGITS_STREAM_MAXLEN"])
    created = streams.create(found.redis, _checked(name), maxlen)
    body = streams.info(found.redis, name) | _urls(name)
    return body, 201 if created else 200, {"Location": url_for("streams.stream", name=name)}


@bp.get("/streams/<name>")
def stream(name: str) -> Any:
    """Report a stream's inputs waiting, answers and dead letters kept, and its last answer."""
    return streams.info(services().redis, _existing(name)) | _urls(name)


@bp.post("/streams/<name>/in")
def add_inputs(name: str) -> Any:
    """Add one input entry per NDJSON line or CSV row of the body; 202 with the entry ids."""
    _existing(name)
    request.max_content_length = sys.maxsize  # any length: it is read block by block
    added = stream_input.add(services().redis, name, _blocks())
    access.note(rows=added["count"])
    return {"stream": name, **added}, 202


@bp.get("/streams/<name>/out")
def answers(name: str) -> Response:
    """Stream answers as they are written: NDJSON, or SSE with Accept: text/event-stream."""
    found = services()
    follow = stream_output.Follow(
        name=_existing(name),
        after=_after(),
        count=_count(request.args.get("count")),
        wait=_wait(found),
        sse=request.accept_mimetypes.best == "text/event-stream",
    )
    return stream_output.response(found.redis, follow)


def _blocks() -> Iterator[stream_input.Block]:
    encoding = pixel_encoding.parse(request.args.get("encoding"))
    if request.mimetype in NDJSON_TYPES:
        return stream_input.ndjson_blocks(request.stream, encoding=encoding)
    if request.mimetype in CSV_TYPES:
        return stream_input.csv_blocks(request.stream, encoding=encoding)
    raise ApiError(
        415,
        "unsupported_media_type",
        "send application/x-ndjson (one JSON object per line) or text/csv (a Kaggle CSV)",
    )


def _checked(name: str) -> str:
    try:
        return streams.check_name(name)
    except streams.StreamNameError as error:
        raise ApiError(400, "invalid_stream_name", str(error)) from None


def _existing(name: str) -> str:
    found = services()
    listed = streams.configured(found.config["DIGITS_STREAMS"])
    if not streams.exists(found.redis, _checked(name), listed):
        raise ApiError(
            404, "not_found", f"no stream {name!r}: create it with POST /v1/streams/{name}"
        )
    return name


def _maxlen(default: int) -> int:
    """The optional body {"maxlen": N}: answers the stream keeps."""
    body = request.get_data(cache=False)
    try:
        settings = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError:
        settings = None
    if not isinstance(settings, dict) or settings.keys() - {"maxlen"}:
        raise ApiError(400, "invalid_json", 'the body is empty or {"maxlen": N}')
    maxlen = settings.get("maxlen", default)
    if type(maxlen) is not int or not 1 <= maxlen <= MAX_COUNT:
        raise ApiError(400, "invalid_parameter", f"maxlen must be an integer 1-{MAX_COUNT}")
    return maxlen


def _after() -> str:
    after = request.args.get("after", request.headers.get("Last-Event-ID", "0-0"))
    if not stream_output.ENTRY_ID.fullmatch(after):
        raise ApiError(
            400,
            "invalid_parameter",
            f"after must be an entry id like 1700000000000-0, got {after!r}",
        )
    return after


def _count(raw: str | None) -> int:
    if raw is None:
        return MAX_COUNT
    if not raw.isdigit() or not 0 < int(raw) <= MAX_COUNT:
        raise ApiError(400, "invalid_parameter", f"count must be an integer 1-{MAX_COUNT}")
    return int(raw)


def _wait(found: Services) -> float:
    """The ?wait= idle seconds, capped at DIGITS_STREAM_MAX_WAIT: a follower may reconnect."""
    largest = found.config["DIGITS_STREAM_MAX_WAIT"]
    asked = parse_wait(request.args.get("wait"), found.config["DIGITS_STREAM_WAIT"], math.inf)
    return min(asked, largest)


def _urls(name: str) -> dict[str, str]:
    return {
        "in_url": url_for("streams.add_inputs", name=name),
        "out_url": url_for("streams.answers", name=name),
    }


ERROR = {"$ref": "#/components/responses/Error"}
NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": streams.NAME.pattern.join("^$")},
}
STREAM = {
    "description": "the stream's counts and URLs",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "inputs": {"type": "integer", "description": "inputs not yet answered"},
                    "answers": {"type": "integer", "description": "answers kept"},
                    "dead": {"type": "integer", "description": "dead letters kept"},
                    "last_answer_id": {"type": "string"},
                    "in_url": {"type": "string"},
                    "out_url": {"type": "string"},
                },
                "required": ["name", "inputs", "answers", "dead", "last_answer_id"],
            }
        }
    },
}
ANSWERS = (
    "one answer per line (NDJSON) or per event (SSE): out_id, in_id, id, label, confidence, "
    "uncertain, probabilities, model_version, or error"
)
# This blueprint's part of /openapi.json, in the same terms as `api.openapi`.
OPENAPI_PATHS: dict[str, Any] = {
    "/v1/streams/{name}": {
        "post": {
            "summary": "Create a stream (201) or confirm it exists (200); admin key if keys are on",
            "parameters": [NAME],
            "requestBody": {
                "required": False,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "maxlen": {"type": "integer", "minimum": 1, "maximum": MAX_COUNT}
                            },
                            "additionalProperties": False,
                        }
                    }
                },
            },
            "responses": {"200": STREAM, "201": STREAM, "400": ERROR, "503": ERROR},
        },
        "get": {
            "summary": "A stream's inputs waiting, answers and dead letters kept",
            "parameters": [NAME],
            "responses": {"200": STREAM, "400": ERROR, "404": ERROR, "503": ERROR},
        },
    },
    "/v1/streams/{name}/in": {
        "post": {
            "summary": "Add one input per NDJSON line or Kaggle CSV row, of any length",
            "parameters": [NAME, pixel_encoding.PARAMETER],
            "requestBody": {
                "required": True,
                "content": {
                    "application/x-ndjson": {
                        "schema": {
                            "type": "string",
                            "description": '{"pixels": [784 ints], "id"?: "..."} per line',
                        }
                    },
                    "text/csv": {
                        "schema": {"type": "string", "description": "a Kaggle CSV, header first"}
                    },
                },
            },
            "responses": {
                "202": {
                    "description": "added: the first and last entry ids and how many",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "stream": {"type": "string"},
                                    "first_id": {"type": "string"},
                                    "last_id": {"type": "string"},
                                    "count": {"type": "integer", "minimum": 1},
                                },
                                "required": ["stream", "first_id", "last_id", "count"],
                            }
                        }
                    },
                },
                **dict.fromkeys(("400", "404", "413", "415", "422", "503"), ERROR),
            },
        }
    },
    "/v1/streams/{name}/out": {
        "get": {
            "summary": "Follow the answers as written: NDJSON, or SSE (Accept: text/event-stream)",
            "parameters": [
                NAME,
                {
                    "name": "after",
                    "in": "query",
                    "required": False,
                    "schema": {
                        "type": "string",
                        "pattern": stream_output.ENTRY_ID.pattern.join("^$"),
                    },
                },
                {
                    "name": "count",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_COUNT},
                },
                {
                    "name": "wait",
                    "in": "query",
                    "required": False,
                    "description": "idle seconds before it ends (capped at DIGITS_STREAM_MAX_WAIT)",
                    "schema": {"type": "number", "minimum": 0},
                },
            ],
            "responses": {
                "200": {
                    "description": ANSWERS,
                    "content": {
                        "application/x-ndjson": {"schema": {"type": "string"}},
                        "text/event-stream": {"schema": {"type": "string"}},
                    },
                },
                **dict.fromkeys(("400", "404", "503"), ERROR),
            },
        }
    },
}

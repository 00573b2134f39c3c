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

from api import access, pixel_encoding, schemas, stream_input, stream_output
from api.errors import ApiError
from api.inputs import EncodingQuery, FollowQuery, StreamSettings
from api.openapi import TEXT, Operation
from api.payload import parse_wait
from api.schemas import MAX_COUNT
from api.services import Services, services
from store import streams

bp = Blueprint("streams", __name__, url_prefix="/v1")

NDJSON_TYPES = {"application/x-ndjson", "application/jsonl", "application/json-lines"}
CSV_TYPES = {"text/csv", "application/csv"}
STREAM = ("the stream's counts and URLs", schemas.Stream)
ANSWERS = (
    "one answer per line (NDJSON) or per event (SSE): out_id, in_id, id, label, confidence, "
    "uncertain, probabilities, model_version, box (for a picture), or error"
)


@bp.post("/streams/<name>")
@Operation({200: STREAM, 201: STREAM}, errors=(400, 503), body=StreamSettings, body_required=False)
def create_stream(name: str) -> Any:
    """Create stream `name` (201), or confirm it exists (200)."""
    found = services()
    maxlen = _maxlen(found.config["DIGITS_STREAM_MAXLEN"])
    created = streams.create(found.redis, _checked(name), maxlen)
    body = streams.info(found.redis, name) | _urls(name)
    return body, 201 if created else 200, {"Location": url_for("streams.stream", name=name)}


@bp.get("/streams/<name>")
@Operation({200: STREAM}, errors=(400, 404, 503))
def stream(name: str) -> Any:
    """Report a stream's inputs waiting, answers and dead letters kept, and its last answer."""
    return streams.info(services().redis, _existing(name)) | _urls(name)


@bp.post("/streams/<name>/in")
@Operation(
    {202: ("added: the first and last entry ids and how many", schemas.StreamAdded)},
    errors=(400, 404, 413, 415, 422, 503),
    query=EncodingQuery,
    body={
        "application/x-ndjson": TEXT
        | {"description": '{"pixels": [784 ints], "id"?: "..."} per line'},
        "text/csv": TEXT | {"description": "a Kaggle CSV, header first"},
    },
)
def add_inputs(name: str) -> Any:
    """Add one input entry per NDJSON line or CSV row of the body; 202 with the entry ids."""
    _existing(name)
    request.max_content_length = sys.maxsize  # any length: it is read block by block
    added = stream_input.add(services().redis, name, _blocks())
    access.note(rows=added["count"])
    return {"stream": name, **added}, 202


@bp.get("/streams/<name>/out")
@Operation(
    {200: (ANSWERS, {"application/x-ndjson": TEXT, "text/event-stream": TEXT})},
    errors=(400, 404, 503),
    query=FollowQuery,
)
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
    if type(maxlen) is float and maxlen.is_integer():  # JSON Schema's integers include 5.0
        maxlen = int(maxlen)
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

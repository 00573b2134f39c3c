"""The drawing page (`GET /`) and predictions of uploaded pictures (`POST /v1/predict/image`)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson
from flask import Blueprint, Response, current_app, request

from api import jobs, schemas, upload
from api.errors import ApiError
from api.inputs import FileUpload, PictureBody, PictureQuery
from api.openapi import BINARY, TEXT, Operation
from api.services import Services, services
from pictures.preprocess import ImageError, Seen, preprocess

RAW_TYPES = {"application/octet-stream"}  # besides image/*: what curl --data-binary may send
DATA_URL_SHAPE = "data:image/png;base64,..."  # what a canvas's toDataURL() gives

bp = Blueprint("images", __name__)


@bp.get("/")
@Operation({200: ("the page", {"text/html": TEXT})})
def page() -> Response:
    """Serve the drawing page (its script and style come from the app's static folder)."""
    return current_app.send_static_file("index.html")


@bp.post("/v1/predict/image")
@Operation(
    {
        200: ("the label, probabilities and pixels seen", schemas.PictureFinished),
        202: ("still running after the wait", schemas.PictureAccepted),
    },
    errors=(400, 413, 415, 422, 429, 500, 503),
    query=PictureQuery,
    body={"multipart/form-data": FileUpload, "image/*": BINARY, "application/json": PictureBody},
)
def predict_image() -> Any:
    """Label one picture of a digit, answering like /v1/predict plus what the model saw."""
    return answer(services(), _upload())


def answer(found: Services, data: bytes) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Label the encoded picture `data`, waiting up to ?wait= seconds, as /v1/predict does.

    The body adds `pixels` (28 rows of 28 ints 0-255, what the model saw) and `box`
    ([left, top, right, bottom] of the digit in the picture's pixels). Raises ApiError: 422
    for a picture that cannot be read or shows no ink, 413 over the pixel limit, and those of
    /v1/predict (503 no worker, 429 queue full).
    """
    seen = _seen(data)
    body, status, headers = jobs.answer(found, seen.pixels.reshape(1, -1))
    return {**body, "pixels": seen.pixels.tolist(), "box": seen.box}, status, headers


def _upload() -> bytes:
    if request.is_json:
        return _data_url(request.get_data(cache=False))
    raw = request.mimetype.startswith("image/") or request.mimetype in RAW_TYPES
    expected = (
        "send the picture as multipart field 'file', as an image/* request body, or as JSON "
        '{"image": "data:image/png;base64,..."}'
    )
    return upload.read(raw, expected)


def _data_url(body: bytes) -> bytes:
    """Return the bytes of the RFC 2397 data URL in a JSON body's `image` field."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {error}") from None
    return picture_field(document)


def picture_field(document: Any) -> bytes:
    """Return the picture in a JSON document's `image` field (a base64 data URL) as bytes.

    Raises ApiError 422 `invalid_image` when the field is missing or not such a URL.
    """
    url = document.get("image") if isinstance(document, dict) else None
    if not isinstance(url, str):
        pixels = isinstance(document, dict) and {"pixels", "images"} & document.keys()
        hint = "; pixel vectors go to POST /v1/predict" if pixels else ""
        raise ApiError(422, "invalid_image", f'expected {{"image": "{DATA_URL_SHAPE}"}}{hint}')
    header, comma, data = url.partition(",")
    if not (header.startswith("data:") and header.endswith(";base64") and comma):
        raise ApiError(
            422, "invalid_image", f"image must be a base64 data URL like {DATA_URL_SHAPE}"
        )
    try:
        return base64.b64decode(data, validate=True)
    except binascii.Error as error:
        raise ApiError(422, "invalid_image", f"the data URL's base64 is broken: {error}") from None


def _seen(data: bytes) -> Seen:
    try:
        return preprocess(data)
    except ImageError as error:
        raise ApiError(error.status, error.code, error.message) from None

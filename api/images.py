"""The drawing page (`GET /`) and predictions of uploaded pictures (`POST /v1/predict/image`)."""

from __future__ import annotations

from typing import Any

import numpy as np
from flask import Blueprint, Response, current_app, request
from numpy.typing import NDArray

from api import errors, jobs, microbatch, payload
from api.errors import ApiError
from api.preprocess import ImageError, preprocess
from api.services import services
from worker import results

RAW_TYPES = {"application/octet-stream"}  # besides image/*: what curl --data-binary may send

bp = Blueprint("images", __name__)


@bp.get("/")
def page() -> Response:
    """Serve the drawing page (its script and style come from the app's static folder)."""
    return current_app.send_static_file("index.html")


@bp.post("/v1/predict/image")
def predict_image() -> Any:
    """Label one picture of a digit, answering like /v1/predict plus the 28x28 pixels seen."""
    found = services()
    wait = payload.parse_wait(
        request.args.get("wait"), found.config["DIGITS_WAIT"], found.config["DIGITS_MAX_WAIT"]
    )
    pixels = _pixels(_upload())
    # Queued and awaited exactly as `jobs.predict` does, so pictures share its micro-batches.
    with microbatch.batcher().submit(pixels.reshape(1, -1)) as job_id:
        result = results.wait(found.redis, job_id, wait)
    if result is None:
        body, status, headers = jobs._accepted(job_id)
        return {**body, "pixels": pixels.tolist()}, status, headers
    if result.error is not None:
        raise errors.job_failure(result.error)
    return {**jobs._finished(job_id, result), "pixels": pixels.tolist()}


def _upload() -> bytes:
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise ApiError(400, "missing_file", "the multipart body has no field named 'file'")
        return upload.read()
    if request.mimetype.startswith("image/") or request.mimetype in RAW_TYPES:
        return request.get_data(cache=False)
    raise ApiError(
        415,
        "unsupported_media_type",
        "send the picture as multipart field 'file' or as an image/* request body",
    )


def _pixels(data: bytes) -> NDArray[np.uint8]:
    try:
        return preprocess(data)
    except ImageError as error:
        raise ApiError(error.status, error.code, error.message) from None


ERROR = {"$ref": "#/components/responses/Error"}
PIXELS = {
    "type": "array",
    "description": "the 28x28 picture the model saw, rows of 0-255, ink bright",
    "items": {"type": "array", "items": {"type": "integer"}, "minItems": 28, "maxItems": 28},
    "minItems": 28,
    "maxItems": 28,
}


def _answer(schema: str, description: str) -> dict[str, Any]:
    with_pixels = {"type": "object", "properties": {"pixels": PIXELS}, "required": ["pixels"]}
    body = {"allOf": [{"$ref": f"#/components/schemas/{schema}"}, with_pixels]}
    return {"description": description, "content": {"application/json": {"schema": body}}}


# This blueprint's part of /openapi.json, in the same terms as `api.openapi`.
OPENAPI_PATHS: dict[str, Any] = {
    "/": {
        "get": {
            "summary": "The drawing page",
            "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}},
        }
    },
    "/v1/predict/image": {
        "post": {
            "summary": "Label one picture of a digit (PNG, JPEG, GIF, BMP or WebP)",
            "parameters": [
                {
                    "name": "wait",
                    "in": "query",
                    "required": False,
                    "description": "seconds to wait for the result, as for /v1/predict",
                    "schema": {"type": "number", "minimum": 0},
                }
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {"file": {"type": "string", "format": "binary"}},
                            "required": ["file"],
                        }
                    },
                    "image/*": {"schema": {"type": "string", "format": "binary"}},
                },
            },
            "responses": {
                "200": _answer("JobFinished", "the label, probabilities and pixels seen"),
                "202": _answer("JobAccepted", "still running after the wait"),
                **dict.fromkeys(("400", "413", "415", "422", "429", "500", "503"), ERROR),
            },
        }
    },
}

"""The drawing page (`GET /`) and predictions of uploaded pictures (`POST /v1/predict/image`)."""

from __future__ import annotations

from typing import Any

import numpy as np
from flask import Blueprint, Response, current_app, request
from numpy.typing import NDArray

from api import jobs, upload
from api.errors import ApiError
from api.preprocess import ImageError, preprocess
from api.services import services

RAW_TYPES = {"application/octet-stream"}  # besides image/*: what curl --data-binary may send

bp = Blueprint("images", __name__)


@bp.get("/")
def page() -> Response:
    """Serve the drawing page (its script and style come from the app's static folder)."""
    return current_app.send_static_file("index.html")


@bp.post("/v1/predict/image")
def predict_image() -> Any:
    """Label one picture of a digit, answering like /v1/predict plus the 28x28 pixels seen."""
    pixels = _pixels(_upload())
    body, status, headers = jobs.answer(services(), pixels.reshape(1, -1))
    return {**body, "pixels": pixels.tolist()}, status, headers


def _upload() -> bytes:
    raw = request.mimetype.startswith("image/") or request.mimetype in RAW_TYPES
    expected = "send the picture as multipart field 'file' or as an image/* request body"
    return upload.read(raw, expected)


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

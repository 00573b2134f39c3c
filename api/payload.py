"""Validate request bodies and parameters: pure functions that raise ApiError."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from api.errors import ApiError

N_PIXELS = 784
FIELDS = {"pixels", "images"}
SHAPE_HINT = '{"pixels": [784 integers 0-255]} or {"images": [[784 integers 0-255], ...]}'


def parse_images(body: bytes, max_images: int) -> NDArray[np.uint8]:
    """Return the `(n, 784)` uint8 pixels of a JSON body, or raise ApiError saying what is wrong."""
    document = _parse_json(body)
    if not isinstance(document, dict) or len(FIELDS & document.keys()) != 1:
        raise _invalid(f"the body must be a JSON object: {SHAPE_HINT}")
    unexpected = sorted(document.keys() - FIELDS)
    if unexpected:
        raise _invalid(f"unexpected field {unexpected[0]!r}: the body must be {SHAPE_HINT}")
    name = "pixels" if "pixels" in document else "images"
    images = [document["pixels"]] if name == "pixels" else document["images"]
    if not isinstance(images, list) or not images:
        raise _invalid(f"{name} must be a non-empty list of images of {N_PIXELS} integers")
    if name == "images" and not isinstance(images[0], list):
        raise _invalid(f"images must be a list of images, each a list of {N_PIXELS} integers")
    if len(images) > max_images:
        raise ApiError(
            413, "too_many_images", f"{len(images)} images sent, at most {max_images} per request"
        )
    return _to_pixels(images, name, body)


def _parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {error}") from None


def _to_pixels(images: list[Any], name: str, body: bytes) -> NDArray[np.uint8]:
    try:
        array = np.asarray(images)
    except (ValueError, OverflowError):
        raise _invalid(_first_problem(images, name)) from None
    valid = (
        array.ndim == 2
        and array.shape[1] == N_PIXELS
        and array.dtype.kind in "iu"
        and array.min() >= 0
        and array.max() <= 255
        # numpy turns a boolean among integers into 0 or 1; JSON booleans are spelled out.
        and b"true" not in body
        and b"false" not in body
    )
    if not valid:
        raise _invalid(_first_problem(images, name))
    return array.astype(np.uint8)


def _first_problem(images: list[Any], name: str) -> str:
    """Describe the first image or value that is not right (the slow path, errors only)."""
    for index, image in enumerate(images):
        where = name if name == "pixels" else f"{name}[{index}]"
        if not isinstance(image, list):
            return f"{where} must be a list of {N_PIXELS} integers, got {_show(image)}"
        if len(image) != N_PIXELS:
            return f"{where} has {len(image)} values, expected {N_PIXELS}"
        for position, value in enumerate(image):
            if type(value) is not int or not 0 <= value <= 255:
                return f"{where}[{position}] is {_show(value)}, expected an integer 0-255"
    return f"the body must be {SHAPE_HINT}"


def _show(value: Any) -> str:
    text = orjson.dumps(value).decode()
    return text if len(text) <= 40 else text[:37] + "..."


def _invalid(message: str) -> ApiError:
    return ApiError(422, "invalid_pixels", message)


def parse_wait(raw: str | None, default: float, maximum: float) -> float:
    """Return the ?wait= seconds, or raise ApiError when it is not a number in [0, maximum]."""
    if raw is None:
        return default
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds <= maximum:
        raise ApiError(
            400, "invalid_parameter", f"wait must be a number of seconds from 0 to {maximum:g}"
        )
    return seconds

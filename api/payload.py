"""Validate request bodies and parameters: pure functions that raise ApiError."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from api.errors import ApiError

N_PIXELS = 784
SIDE = 28  # an image may also come as 28 rows of 28 values, a common client shape
FIELDS = {"pixels", "images"}
SHAPE_HINT = '{"pixels": [784 integers 0-255]} or {"images": [[784 integers 0-255], ...]}'
IMAGE_HINT = (
    "a picture goes to POST /v1/predict/image: the file itself, multipart field 'file', or "
    'JSON {"image": "data:image/png;base64,..."}'
)


def parse_images(body: bytes, max_images: int) -> NDArray[np.uint8]:
    """Return the `(n, 784)` uint8 pixels of a JSON body, or raise ApiError saying what is wrong."""
    document = _parse_json(body)
    _refuse_pictures(document)
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


def _refuse_pictures(document: Any) -> None:
    """Send a picture (a data URL, or an `image` field) to the endpoint that reads pictures."""
    if not isinstance(document, dict):
        return
    if "image" in document and not FIELDS & document.keys():
        raise ApiError(422, "not_pixels", f"'image' holds a picture, not pixels: {IMAGE_HINT}")
    for name in FIELDS & document.keys():
        if isinstance(document[name], str) and document[name].startswith("data:"):
            raise ApiError(422, "not_pixels", f"{name} is a data URL, not pixels: {IMAGE_HINT}")


def _to_pixels(images: list[Any], name: str, body: bytes) -> NDArray[np.uint8]:
    try:
        array = np.asarray(images)
    except (ValueError, OverflowError):
        raise _invalid(_first_problem(images, name)) from None
    if array.ndim == 3 and array.shape[1:] == (SIDE, SIDE):  # 28 rows of 28 per image
        array = array.reshape(len(array), N_PIXELS)
    elif name == "pixels" and array.shape == (1, 1, N_PIXELS):  # {"pixels": [[784 values]]}
        array = array.reshape(1, N_PIXELS)
    valid = (
        array.ndim == 2
        and array.shape[1] == N_PIXELS
        and (array.dtype.kind in "iu" or (array.dtype.kind == "f" and _integral(array)))
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
        nested = bool(image) and all(isinstance(row, list) for row in image)
        if nested:
            problem = _nested_problem(image, where, name)
        else:
            problem = _values_problem(image, where, N_PIXELS)
        if problem:
            return problem
    return f"the body must be {SHAPE_HINT}"


def _values_problem(values: list[Any], where: str, length: int) -> str | None:
    if len(values) != length:
        rows = f" (a {SIDE}x{SIDE} image is {SIDE} rows of {SIDE})" if length == SIDE else ""
        return f"{where} has {len(values)} values, expected {length}{rows}"
    for position, value in enumerate(values):
        whole = type(value) is int or (type(value) is float and value.is_integer())
        if not whole or not 0 <= value <= 255:
            hint = ""
            if type(value) is float and 0 < value < 1:
                hint = " (pixels scaled to 0-1? multiply by 255 and round)"
            return f"{where}[{position}] is {_show(value)}, expected an integer 0-255{hint}"
    return None


def _integral(array: NDArray[np.floating]) -> bool:
    """Say whether every value is a whole number (12.0: what numpy's tolist() gives floats)."""
    return bool(np.isfinite(array).all() and (array == np.rint(array)).all())


def _nested_problem(image: list[Any], where: str, name: str) -> str | None:
    """Describe what is wrong with an image sent as lists of lists (28 rows of 28, [[784]])."""
    if len(image) == SIDE:
        for index, row in enumerate(image):
            problem = _values_problem(row, f"{where}[{index}]", SIDE)
            if problem:
                return problem
        return None
    if name == "pixels" and len(image) > 1 and all(len(row) == N_PIXELS for row in image):
        return f'pixels holds {len(image)} images: send several as {{"images": [...]}}'
    if len(image) == 1:
        return _values_problem(image[0], f"{where}[0]", N_PIXELS)
    return f"{where} is {len(image)} lists: expected {N_PIXELS} integers, or {SIDE} rows of {SIDE}"


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

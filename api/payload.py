"""Validate request bodies and parameters: pure functions that raise ApiError.

Pixels sent as JSON are checked here for every route that takes them (`/v1/predict`,
`/v1/jobs`, each NDJSON line of a stream's input), so that what one accepts the others do.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from api.errors import ApiError
from formats.mnist import N_PIXELS, SIDE  # an image may also come as 28 rows of 28 values

FIELDS = {"pixels", "images"}
SHAPE_HINT = '{"pixels": [784 integers 0-255]} or {"images": [[784 integers 0-255], ...]}'
SEVERAL = 'send several as {"images": [...]}'
IMAGE_HINT = (
    "a picture goes to POST /v1/predict/image: the file itself, multipart field 'file', or "
    'JSON {"image": "data:image/png;base64,..."}'
)


def parse_images(body: bytes, max_images: int) -> NDArray[np.uint8]:
    """Return the `(n, 784)` uint8 pixels of a JSON body, or raise ApiError saying what is wrong."""
    document = _parse_json(body)
    refuse_pictures(document)
    if not isinstance(document, dict) or len(FIELDS & document.keys()) != 1:
        raise _invalid(f"the body must be a JSON object: {SHAPE_HINT}")
    unexpected = sorted(document.keys() - FIELDS)
    if unexpected:
        raise _invalid(f"unexpected field {unexpected[0]!r}: the body must be {SHAPE_HINT}")
    if "pixels" in document:
        return pixel_values([document["pixels"]], body)
    images = document["images"]
    if not isinstance(images, list) or not images:
        raise _invalid(f"images must be a non-empty list of images of {N_PIXELS} integers")
    if not isinstance(images[0], list):
        raise _invalid(f"images must be a list of images, each a list of {N_PIXELS} integers")
    if len(images) > max_images:
        raise ApiError(
            413, "too_many_images", f"{len(images)} images sent, at most {max_images} per request"
        )
    return _to_pixels(images, lambda index: f"images[{index}]", body, single=False)


def pixel_values(
    values: list[Any],
    text: bytes,
    where: Callable[[int], str] = lambda _: "pixels",
    several: str = SEVERAL,
) -> NDArray[np.uint8]:
    """Return `(n, 784)` uint8 pixels from n values of a `pixels` field; raise ApiError 422.

    A value is 784 integers 0-255 (whole-number floats like 12.0 count), 28 rows of 28, or one
    list of 784. `text` is the JSON the values were parsed from: booleans (which NumPy would
    take for 0 and 1) are looked for in it first. `where(i)` names value i in an error
    ("pixels", "line 12: pixels"), and `several` says what to do instead of sending several
    images in one value.
    """
    return _to_pixels(values, where, text, single=True, several=several)


def _parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {error}") from None


def refuse_pictures(document: Any) -> None:
    """Send a picture (a data URL, or an `image` field) to the endpoint that reads pictures."""
    if not isinstance(document, dict):
        return
    if "image" in document and not FIELDS & document.keys():
        raise ApiError(422, "not_pixels", f"'image' holds a picture, not pixels: {IMAGE_HINT}")
    for name in FIELDS & document.keys():
        if isinstance(document[name], str) and document[name].startswith("data:"):
            raise ApiError(422, "not_pixels", f"{name} is a data URL, not pixels: {IMAGE_HINT}")


def _to_pixels(
    images: list[Any],
    where: Callable[[int], str],
    text: bytes,
    single: bool,
    several: str = SEVERAL,
) -> NDArray[np.uint8]:
    """Check and convert images; `single`: each is a `pixels` value, so [[784]] is one too."""
    try:
        array = np.asarray(images)
    except (ValueError, OverflowError):
        array = np.zeros((0, 0))
    # 28 rows of 28 per image; or, for a `pixels` value, one image in a list: [[784 values]]
    if array.ndim == 3 and array.shape[1:] in {(SIDE, SIDE), (1, N_PIXELS) if single else None}:
        array = array.reshape(len(array), N_PIXELS)
    valid = (
        array.ndim == 2
        and array.shape[1] == N_PIXELS
        and (array.dtype.kind in "iu" or (array.dtype.kind == "f" and _integral(array)))
        and array.min() >= 0
        and array.max() <= 255
    )
    # numpy turns a boolean among integers into 0 or 1; JSON booleans are spelled out.
    problem = None
    if not valid or b"true" in text or b"false" in text:
        problem = _first_problem(images, where, single, several)
        if problem is None and not valid:  # each image is right, but not all alike
            problem = f"the images must all be {N_PIXELS} integers, or all {SIDE} rows of {SIDE}"
    if problem:
        raise _invalid(problem)
    return array.astype(np.uint8)


def _first_problem(
    images: list[Any], where: Callable[[int], str], single: bool, several: str
) -> str | None:
    """Describe the first image or value that is not right (the slow path, errors only)."""
    for index, image in enumerate(images):
        if not isinstance(image, list):
            return f"{where(index)} must be a list of {N_PIXELS} integers, got {_show(image)}"
        nested = bool(image) and all(isinstance(row, list) for row in image)
        if nested:
            problem = _nested_problem(image, where(index), single, several)
        else:
            problem = _values_problem(image, where(index), N_PIXELS)
        if problem:
            return problem
    return None


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


def _nested_problem(image: list[Any], where: str, single: bool, several: str) -> str | None:
    """Describe what is wrong with an image sent as lists of lists (28 rows of 28, [[784]])."""
    if len(image) == SIDE:
        for index, row in enumerate(image):
            problem = _values_problem(row, f"{where}[{index}]", SIDE)
            if problem:
                return problem
        return None
    if single and len(image) > 1 and all(len(row) == N_PIXELS for row in image):
        return f"{where} holds {len(image)} images: {several}"
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

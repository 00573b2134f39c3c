"""Properties of the JSON body and parameter parsers: any input, a right answer or a 4xx."""

from __future__ import annotations

import json
import math

import numpy as np
import orjson
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from api import payload
from api.errors import ApiError

MAX_IMAGES = 8
pixel_values = st.integers(0, 255)
image = st.binary(min_size=784, max_size=784).map(list)  # 784 integers 0-255, quickly
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.sampled_from(["pixels", "images", "x"]), children, max_size=3)
    ),
    max_leaves=30,
)
not_a_pixel = st.one_of(
    st.integers(256, 2**70),
    st.integers(-(2**70), -1),
    # whole numbers 0-255 as floats (12.0) are pixels: numpy's astype(float).tolist() sends them
    st.floats(allow_nan=False, allow_infinity=False).filter(
        lambda value: not (value.is_integer() and 0 <= value <= 255)
    ),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
    st.lists(pixel_values, max_size=2),
    st.just({}),
)


def encode(document: object, indent: bool = False) -> bytes:
    """JSON text of `document`; unlike orjson, the standard library writes any integer."""
    return json.dumps(document, indent=2 if indent else None).encode()


def outcome(body: bytes) -> np.ndarray | ApiError:
    """Parse, and check the one contract: a (n, 784) uint8 array, or a 4xx ApiError."""
    try:
        pixels = payload.parse_images(body, MAX_IMAGES)
    except ApiError as error:
        assert error.status in (400, 413, 422)
        assert error.code and error.message
        return error
    assert pixels.dtype == np.uint8 and pixels.ndim == 2 and pixels.shape[1] == 784
    assert 1 <= len(pixels) <= MAX_IMAGES
    return pixels


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=200))
def test_any_bytes_are_parsed_or_refused_with_a_4xx(body: bytes) -> None:
    outcome(body)


@settings(max_examples=300, deadline=None)
@given(document=json_values)
def test_any_json_document_is_parsed_or_refused_with_a_4xx(document: object) -> None:
    outcome(encode(document))


@settings(max_examples=60, deadline=None)
@given(images=st.lists(image, min_size=1, max_size=MAX_IMAGES), indent=st.booleans())
def test_valid_images_come_back_exactly_in_either_form(images: list, indent: bool) -> None:
    got = outcome(encode({"images": images}, indent))
    np.testing.assert_array_equal(got, np.array(images, dtype=np.uint8))
    single = outcome(encode({"pixels": images[0]}, indent))
    np.testing.assert_array_equal(single, np.array(images[:1], dtype=np.uint8))


@settings(max_examples=200, deadline=None)
@given(
    images=st.lists(image, min_size=1, max_size=3),
    data=st.data(),
    bad=not_a_pixel,
    single=st.booleans(),
)
def test_the_first_bad_value_is_named_with_its_position(
    images: list, data: st.DataObject, bad: object, single: bool
) -> None:
    which = 0 if single else data.draw(st.integers(0, len(images) - 1))
    position = data.draw(st.integers(0, 783))
    images[which][position] = bad
    body = {"pixels": images[0]} if single else {"images": images}
    error = outcome(encode(body))
    assert isinstance(error, ApiError) and error.status == 422
    where = "pixels" if single else f"images[{which}]"
    assert error.message.startswith(f"{where}[{position}] is ")


@settings(max_examples=100, deadline=None)
@given(length=st.integers(0, 2000), single=st.booleans())
def test_a_wrong_length_is_named(length: int, single: bool) -> None:
    assume(length != 784)
    values = [0] * length
    body = {"pixels": values} if single else {"images": [[0] * 784, values]}
    error = outcome(encode(body))
    assert isinstance(error, ApiError) and error.status == 422
    if single or length:
        where = "pixels" if single else "images[1]"
        assert error.message == f"{where} has {length} values, expected 784"


@given(count=st.integers(MAX_IMAGES + 1, 3 * MAX_IMAGES))
@settings(max_examples=20, deadline=None)
def test_too_many_images_is_413(count: int) -> None:
    error = outcome(encode({"images": [[0] * 784] * count}))
    assert isinstance(error, ApiError)
    assert (error.status, error.code) == (413, "too_many_images")


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 10_000 + b"]" * 10_000,
        b'{"pixels": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
        b'{"pixels": [' + b",".join([b"1e400"] * 784) + b"]}",
        b'{"pixels": [' + b",".join([b"1" + b"0" * 30] * 784) + b"]}",
        b'{"pixels": [NaN]}',
        b"\xef\xbb\xbf{}",
        b'{"pixels": [0, 0',
    ],
)
def test_hostile_documents_are_refused(body: bytes) -> None:
    assert isinstance(outcome(body), ApiError)


@settings(max_examples=300, deadline=None)
@given(raw=st.one_of(st.none(), st.text(max_size=12), st.floats().map(str)))
def test_wait_is_a_finite_number_in_range_or_400(raw: str | None) -> None:
    try:
        seconds = payload.parse_wait(raw, 5.0, 60.0)
    except ApiError as error:
        assert (error.status, error.code) == (400, "invalid_parameter")
    else:
        assert math.isfinite(seconds) and 0 <= seconds <= 60
        assert seconds == (5.0 if raw is None else float(raw))


# Shapes clients commonly send, and what they are told


def grid(seed: int = 0) -> list[list[int]]:
    return np.random.default_rng(seed).integers(0, 256, (28, 28)).tolist()


def test_a_28x28_nested_list_is_one_image() -> None:
    rows = grid()
    pixels = payload.parse_images(encode({"pixels": rows}), MAX_IMAGES)
    np.testing.assert_array_equal(pixels, np.asarray(rows, np.uint8).reshape(1, 784))


def test_images_may_be_28x28_nested_lists() -> None:
    images = [grid(0), grid(1), grid(2)]
    pixels = payload.parse_images(encode({"images": images}), MAX_IMAGES)
    np.testing.assert_array_equal(pixels, np.asarray(images, np.uint8).reshape(3, 784))


def test_one_image_wrapped_in_a_list_is_accepted() -> None:
    flat = list(range(256)) * 3 + list(range(16))
    pixels = payload.parse_images(encode({"pixels": [flat]}), MAX_IMAGES)
    np.testing.assert_array_equal(pixels, [flat])


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"pixels": [[0] * 28] * 27},
            "pixels is 27 lists: expected 784 integers, or 28 rows of 28",
        ),
        (
            {"pixels": [[0] * 28] * 3 + [[0] * 27] + [[0] * 28] * 24},
            "pixels[3] has 27 values, expected 28 (a 28x28 image is 28 rows of 28)",
        ),
        ({"pixels": [[0] * 28] * 5 + [[0] * 27 + [256]] + [[0] * 28] * 22}, "pixels[5][27] is 256"),
        ({"images": [[[0] * 28] * 28, [[0] * 28] * 2]}, "images[1] is 2 lists: expected 784"),
        ({"pixels": [[0] * 783]}, "pixels[0] has 783 values, expected 784"),
        ({"pixels": [[0] * 784, [0] * 784]}, 'pixels holds 2 images: send several as {"images"'),
        ({"pixels": [[0] * 783 + [True]]}, "pixels[0][783] is true, expected an integer 0-255"),
    ],
)
def test_nested_shapes_that_are_not_images_are_named(document: dict, message: str) -> None:
    error = outcome(encode(document))
    assert isinstance(error, ApiError)
    assert (error.status, error.code) == (422, "invalid_pixels")
    assert message in error.message


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"image": "data:image/png;base64,iVBORw0KGgo="}, "'image' holds a picture, not pixels"),
        ({"pixels": "data:image/png;base64,iVBORw0KGgo="}, "pixels is a data URL, not pixels"),
        ({"images": "data:image/jpeg;base64,/9j/"}, "images is a data URL, not pixels"),
    ],
)
def test_a_picture_sent_as_pixels_is_pointed_to_the_image_endpoint(
    document: dict, message: str
) -> None:
    error = outcome(encode(document))
    assert isinstance(error, ApiError)
    assert (error.status, error.code) == (422, "not_pixels")
    assert message in error.message
    assert "POST /v1/predict/image" in error.message


def test_whole_number_floats_are_pixels() -> None:
    values = [float(v) for v in range(256)] + [0.0] * (784 - 256)  # numpy's astype(float).tolist()
    assert payload.parse_images(orjson.dumps({"pixels": values}), 10).tolist() == [
        [int(v) for v in values]
    ]


def test_pixels_scaled_to_one_are_named_with_what_to_do() -> None:
    values = [0.0] * 783 + [0.5]
    with pytest.raises(ApiError) as refused:
        payload.parse_images(orjson.dumps({"pixels": values}), 10)
    assert refused.value.status == 422
    assert "pixels[783] is 0.5" in refused.value.message
    assert "multiply by 255" in refused.value.message

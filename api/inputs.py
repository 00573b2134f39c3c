"""The shapes of what clients send: JSON bodies, query parameters, headers, route arguments.

Declared once, as `api.schemas` declares the answers, and described by `api.openapi`. The
views read them with their own pure functions (`api.payload`, `api.pixel_encoding`), whose
messages name the image, row or value that is wrong; `tests/test_schemas.py` checks that
they agree with these shapes.
"""

from __future__ import annotations

from typing import Annotated, NotRequired

from pydantic import Field, with_config
from typing_extensions import TypeAliasType, TypedDict

from api import pixel_encoding, stream_output
from api.schemas import CLOSED, Count, Id, Image, Version, setting
from store import streams


@with_config(CLOSED)
class PixelsBody(TypedDict):
    """One image."""

    pixels: Image


@with_config(CLOSED)
class ImagesListBody(TypedDict):
    """Several images, at most DIGITS_MAX_IMAGES."""

    images: Annotated[list[Image], Field(min_length=1), setting(maxItems="DIGITS_MAX_IMAGES")]


ImagesBody = TypeAliasType(
    "ImagesBody",
    Annotated[
        PixelsBody | ImagesListBody,
        Field(description="pixels of one image or several (also taken: 28 rows of 28 each)"),
    ],
)


class PictureBody(TypedDict):
    """A picture as JSON: what a canvas's toDataURL() gives."""

    image: Annotated[str, Field(description="an RFC 2397 base64 data URL of the picture")]


class FileUpload(TypedDict):
    """A file as multipart form data."""

    file: bytes


@with_config(CLOSED)
class StreamSettings(TypedDict):
    """How a new stream is kept (an empty body takes DIGITS_STREAM_MAXLEN)."""

    maxlen: NotRequired[Annotated[Count, Field(description="answers the stream keeps")]]


# Parameters: path arguments by name, and each route's query and headers.
class PathArguments(TypedDict):
    """The route arguments, by name."""

    job_id: Id
    batch_id: Id
    version: Version
    name: Annotated[str, Field(pattern=streams.NAME.pattern.join("^$"))]


Wait = Annotated[
    float,
    Field(ge=0, description="seconds to wait for the result"),
    setting(maximum="DIGITS_MAX_WAIT", default="DIGITS_WAIT"),
]
Encoding = Annotated[
    str,
    Field(
        description="how the pixels are encoded. mnist (default): light ink on black, 0-255;"
        " inverted or thresholded (0/1) images are refused with 422 wrong_encoding. inverted:"
        " dark on light, converted with 255 - x. binary: 0/1 values, converted with x * 255."
        " as-is: used unchanged, unchecked",
        json_schema_extra={"enum": list(pixel_encoding.ENCODINGS), "default": "mnist"},
    ),
]


class EncodingQuery(TypedDict, total=False):
    encoding: Encoding


class PredictQuery(TypedDict, total=False):
    wait: Wait
    encoding: Encoding


class PictureQuery(TypedDict, total=False):
    wait: Wait


AccessToken = Annotated[
    str,
    Field(
        description="the API key, for a client that cannot send an Authorization header"
        " (a browser's WebSocket or EventSource)"
    ),
]


class EventsQuery(TypedDict, total=False):
    access_token: AccessToken


class LiveQuery(TypedDict, total=False):
    wait: Wait
    access_token: AccessToken


class FollowQuery(TypedDict, total=False):
    after: Annotated[
        str,
        Field(pattern=stream_output.ENTRY_ID.pattern.join("^$"), description="answers after it"),
    ]
    count: Annotated[Count, Field(description="answers to send before it ends")]
    wait: Annotated[
        float,
        Field(ge=0, description="idle seconds before it ends (capped at DIGITS_STREAM_MAX_WAIT)"),
        setting(default="DIGITS_STREAM_WAIT"),
    ]


EventsHeaders = TypedDict(
    "EventsHeaders",
    {"Last-Event-ID": Annotated[str, Field(pattern="^[0-9]{1,9}$", description="chunks seen")]},
    total=False,
)

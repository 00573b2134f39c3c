"""The uploaded file of a request: multipart field `file`, or the raw body; never cut short.

Werkzeug reads a body sent without Content-Length (chunked: `curl -T -`, a pipe, a generator)
only up to MAX_CONTENT_LENGTH and then reports its end as if the client had stopped there
(`werkzeug.wsgi.LimitedStream` with `is_max`): an upload over the limit would be silently
truncated. `Request.stream` here reads one byte past the limit and answers 413 when that byte
exists. Under a server that sets `wsgi.input_terminated` (gunicorn), Werkzeug does not hold a
body with Content-Length to that length either: a client that stops early would be read as a
shorter, complete upload. `DeclaredBody` answers 400 `incomplete_body` instead. A body the
server cannot decode (a malformed chunk size) is a 400 `malformed_body`, not a 500.
A gzip `Content-Encoding` is undone here, the caller giving the most bytes it accepts
uncompressed, so a compression bomb is a 413 too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, cast

import flask
from flask import current_app, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.formparser import FormDataParser
from werkzeug.utils import cached_property
from werkzeug.wsgi import LimitedStream, get_input_stream

from api.errors import ApiError
from formats import compressed

IDENTITY = {"", "identity"}


class Request(flask.Request):
    """Flask's request, with a streamed body over the limit refused instead of truncated."""

    @cached_property
    def stream(self) -> IO[bytes]:
        """The body, limited to MAX_CONTENT_LENGTH; more than that raises 413 when read."""
        limit = self.max_content_length
        length = self.content_length
        if "wsgi.input_terminated" not in self.environ:
            return get_input_stream(self.environ, max_content_length=limit)
        if length is None:
            if limit is None:
                return cast(IO[bytes], self.environ["wsgi.input"])
            return cast(IO[bytes], StreamedBody(self.environ["wsgi.input"], limit))
        if limit is not None and length > limit:
            raise RequestEntityTooLarge()
        return cast(IO[bytes], DeclaredBody(self.environ["wsgi.input"], length))

    @property  # type: ignore[misc]
    def max_form_memory_size(self) -> int | None:  # type: ignore[override]
        """Form fields may be as large as the body (so a CSV sent as a field gets its own 400)."""
        return self.max_content_length

    def make_form_data_parser(self) -> FormDataParser:
        """Werkzeug's parser, raising on a malformed body instead of returning no fields."""
        parser = super().make_form_data_parser()
        parser.silent = False
        return parser


class StreamedBody(LimitedStream):
    """A body of unknown length: at most `limit` bytes, RequestEntityTooLarge past them."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        super().__init__(stream, limit + 1, is_max=True)

    def readinto(self, buffer: bytearray) -> int | None:  # type: ignore[override]
        """Read like LimitedStream, refusing the request once byte `limit + 1` arrives."""
        count = _read_server_input(super().readinto, buffer)
        if self._pos >= self.limit:
            raise RequestEntityTooLarge()
        return count


class DeclaredBody(LimitedStream):
    """A body with Content-Length: exactly that many bytes, 400 when the client stops early."""

    def readinto(self, buffer: bytearray) -> int | None:  # type: ignore[override]
        """Read like LimitedStream, with the server's own parse errors as a 400."""
        return _read_server_input(super().readinto, buffer)

    def on_disconnect(self, error: Exception | None = None) -> None:
        """The body ended before its Content-Length: refuse it rather than read a prefix."""
        raise ApiError(
            400,
            "incomplete_body",
            f"the body ended after {self._pos:,} of the {self.limit:,} bytes its Content-Length "
            "announced; nothing was stored: send the whole body again",
        )


def _read_server_input(
    readinto: Callable[[bytearray], int | None], buffer: bytearray
) -> int | None:
    """Call `readinto`, turning an error of the server's body decoding into a 400."""
    try:
        return readinto(buffer)
    except (ApiError, HTTPException):
        raise
    except Exception as error:  # gunicorn.http.errors.ParseException and kin: a bad body
        raise ApiError(
            400,
            "malformed_body",
            f"the request body could not be read ({type(error).__name__}: {error}); "
            "send it with Content-Length, or as valid chunked transfer encoding",
        ) from None


def read(raw_allowed: bool, expected: str, decoded_limit: int | None = None) -> bytes:
    """Return the multipart field `file`, or the body when `raw_allowed` for its type.

    `expected` tells the client what to send instead when the content type is wrong;
    `decoded_limit` bounds a gzip-encoded body once decompressed (default: the body limit).
    """
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in IDENTITY | {"gzip"}:
        raise ApiError(
            415, "unsupported_encoding", f"Content-Encoding {encoding!r} is not supported; use gzip"
        )
    if request.mimetype == "multipart/form-data":
        if encoding == "gzip":
            raise ApiError(
                415,
                "unsupported_encoding",
                "a multipart body cannot be gzip-encoded; send a .gz file in field 'file'",
            )
        return _multipart_file()
    if not raw_allowed:
        raise ApiError(415, "unsupported_media_type", expected)
    body = request.get_data(cache=False)
    if encoding != "gzip":
        return body
    limit = decoded_limit if decoded_limit is not None else current_app.config["MAX_CONTENT_LENGTH"]
    try:
        return compressed.gunzip(body, limit)
    except compressed.ArchiveError as error:
        status = 413 if error.code == "too_large" else 400
        raise ApiError(status, error.code, f"Content-Encoding gzip: {error}") from None


def _multipart_file() -> bytes:
    try:
        upload = request.files.get("file")
    except UnicodeDecodeError as error:
        shown = repr(error.object[max(0, error.start - 30) : error.end + 10])[1:]
        raise ApiError(
            400,
            "bad_multipart",
            f"a multipart part's headers are not UTF-8 (byte 0x{error.object[error.start]:02x} "
            f"in {shown}): rename the file with UTF-8 characters, or send the file as the raw "
            "body",
        ) from None
    except ValueError as error:
        raise ApiError(400, "bad_multipart", f"the multipart body is malformed: {error}") from None
    if upload is not None:
        return upload.read()
    if "file" in request.form:
        raise ApiError(
            400,
            "not_a_file",
            "the field 'file' came as a plain form field, not a file: with curl, "
            "use -F 'file=@path' (with @, not <)",
        )
    raise ApiError(400, "missing_file", "the multipart body has no field named 'file'")

"""The uploaded file of a request: multipart field `file`, or the raw body."""

from __future__ import annotations

from flask import request

from api.errors import ApiError


def read(raw_allowed: bool, expected: str) -> bytes:
    """Return the multipart field `file`, or the body when `raw_allowed` for its type.

    `expected` tells the client what to send instead when the content type is wrong.
    """
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise ApiError(400, "missing_file", "the multipart body has no field named 'file'")
        return upload.read()
    if raw_allowed:
        return request.get_data(cache=False)
    raise ApiError(415, "unsupported_media_type", expected)

"""Flask's JSON through orjson: numpy arrays serialise natively, without Python lists."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response
from flask.json.provider import JSONProvider

OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


class OrjsonProvider(JSONProvider):
    """Serialise with orjson; parse request bodies with orjson."""

    mimetype = "application/json"

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        """Serialise `obj` to a JSON string."""
        return orjson.dumps(obj, option=OPTIONS).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        """Parse a JSON document."""
        return orjson.loads(s)

    def response(self, *args: Any, **kwargs: Any) -> Response:
        """Build a JSON response straight from orjson's bytes."""
        obj = self._prepare_response_obj(args, kwargs)
        return Response(orjson.dumps(obj, option=OPTIONS), mimetype=self.mimetype)

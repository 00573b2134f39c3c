"""The OpenAPI 3.1 document, served at /openapi.json, generated from the routes themselves.

Each view declares what it takes and answers with `@Operation(...)`, naming shapes from
`api.inputs` and `api.schemas`: the path comes from its route, the summary from its
docstring, and pydantic writes every JSON Schema (components/schemas). Keywords that are
settings (`x-setting` in a shape, e.g. the most images per request) take this app's values,
and `api.auth` adds the bearer scheme where this app requires it. Built once per app.

The assembly is our own: the libraries that do it for Flask (spectree, flask-openapi3,
flask-smorest) also validate every request through their models, which the pixel routes
must not pay for, and fix limits at import time where ours are each app's settings.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from flask import Blueprint, Flask, current_app
from pydantic import TypeAdapter
from pydantic.json_schema import GenerateJsonSchema
from werkzeug.routing import Rule

from api import auth, inputs, schemas

bp = Blueprint("openapi", __name__)

ATTRIBUTE = "openapi_operation"  # where a view keeps its Operation
EXTENSION = "digits.openapi"  # the app's document, once built
REF = "#/components/schemas/{model}"
ERROR = {"$ref": "#/components/responses/Error"}
TEXT = {"type": "string"}
BINARY = {"type": "string", "format": "binary"}
Mode = Literal["validation", "serialization"]
View = TypeVar("View", bound=Callable[..., Any])
# A body: a shape sent as JSON, or {media type: shape or JSON Schema}.
Content = Any


@dataclass(frozen=True)
class Operation:
    """What a view takes and answers; decorate the view with it.

    `responses` maps a status to (description, content); `errors` are the statuses answered
    with the one error shape; `query` and `headers` are TypedDicts of the parameters.
    """

    responses: Mapping[int, tuple[str, Content]]
    errors: tuple[int, ...] = ()
    query: Any = None
    headers: Any = None
    body: Content = None
    body_required: bool = True
    description: str | None = None

    def __call__(self, view: View) -> View:
        """Attach this operation to `view`, unchanged otherwise."""
        setattr(view, ATTRIBUTE, self)
        return view


@bp.get("/openapi.json")
@Operation({200: ("the OpenAPI document", schemas.Document)})
def openapi_json() -> Any:
    """This document."""
    return document(current_app)


def document(app: Flask) -> dict[str, Any]:
    """Return the app's OpenAPI 3.1 document: every route whose view declares an Operation."""
    if EXTENSION not in app.extensions:
        app.extensions[EXTENSION] = auth.describe(_build(app), app)
    built: dict[str, Any] = app.extensions[EXTENSION]
    return built


def _build(app: Flask) -> dict[str, Any]:
    components = _Components()
    paths: dict[str, dict[str, Any]] = {}
    for rule in app.url_map.iter_rules():
        declared = getattr(app.view_functions[rule.endpoint], ATTRIBUTE, None)
        if declared is None:
            continue
        summary = _summary(app.view_functions[rule.endpoint])
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            item = paths.setdefault(auth.openapi_path(rule.rule), {})
            item[method.lower()] = _operation(declared, summary, rule, components)
    error = components.schema(schemas.Error, "serialization")
    described = {
        "openapi": "3.1.0",
        "info": {
            "title": "digits",
            "version": "1",
            "description": "Handwritten digits in, labels out: JSON pixels, pictures, Kaggle "
            "CSVs and streams.",
        },
        "paths": paths,
        "components": {
            "schemas": components.found,
            "responses": {
                "Error": {
                    "description": "any error: {error: {code, message}}",
                    "headers": {
                        "Retry-After": {
                            "description": "on 429 and 503: seconds to wait before trying again",
                            "schema": {"type": "integer", "minimum": 1},
                        }
                    },
                    "content": {"application/json": {"schema": error}},
                }
            },
        },
    }
    return _settle(described, app.config)


def _summary(view: Callable[..., Any]) -> str:
    return (view.__doc__ or view.__name__).strip().splitlines()[0]


def _operation(
    declared: Operation, summary: str, rule: Rule, components: _Components
) -> dict[str, Any]:
    responses: dict[str, Any] = {
        str(status): {"description": text, "content": components.content(body, "serialization")}
        for status, (text, body) in declared.responses.items()
    }
    responses |= {str(status): ERROR for status in declared.errors}
    found: dict[str, Any] = {"summary": summary, "responses": responses}
    if declared.description is not None:
        found["description"] = declared.description
    path = re.findall(r"<(?:[^:<>]+:)?([^<>]+)>", rule.rule)
    parameters = _parameters(inputs.PathArguments, "path", path)
    parameters += _parameters(declared.query, "query")
    parameters += _parameters(declared.headers, "header")
    if parameters:
        found["parameters"] = parameters
    if declared.body is not None:
        found["requestBody"] = {
            "required": declared.body_required,
            "content": components.content(declared.body, "validation"),
        }
    return found


def _parameters(shape: Any, where: str, names: list[str] | None = None) -> list[dict[str, Any]]:
    """The fields of a TypedDict as parameters (`names` only, in that order, if given)."""
    if shape is None:
        return []
    described = _adapter(shape).json_schema(schema_generator=_Untitled)
    fields, required = described["properties"], set(described.get("required", ()))
    found = []
    for name in fields if names is None else names:
        schema = dict(fields[name])
        parameter: dict[str, Any] = {"name": name, "in": where}
        parameter["required"] = where == "path" or name in required
        if "description" in schema:
            parameter["description"] = schema.pop("description")
        found.append(parameter | {"schema": schema})
    return found


class _Components:
    """The JSON Schemas of the shapes named so far, as components/schemas."""

    def __init__(self) -> None:
        self.found: dict[str, Any] = {}

    def schema(self, shape: Any, mode: Mode) -> dict[str, Any]:
        """Return a reference to `shape`'s schema (or the schema), keeping what it names."""
        refs, defs = TypeAdapter.json_schemas(
            [(0, mode, _adapter(shape))], ref_template=REF, schema_generator=_Untitled
        )
        self.found |= defs.get("$defs", {})
        return refs[0, mode]

    def content(self, body: Content, mode: Mode) -> dict[str, Any]:
        """Return a content map: JSON for a shape, else each media type's shape or schema."""
        media = body if isinstance(body, dict) else {"application/json": body}
        return {
            kind: {"schema": given if isinstance(given, dict) else self.schema(given, mode)}
            for kind, given in media.items()
        }


@functools.cache
def _adapter(shape: Any) -> TypeAdapter[Any]:
    return TypeAdapter(shape)


class _Untitled(GenerateJsonSchema):
    """Pydantic's schemas without a title on every field (names say it already)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        """Set no field titles."""
        return False


def _settle(node: Any, config: Mapping[str, Any]) -> Any:
    """Replace every `x-setting` {keyword: setting name} with the keywords' configured values."""
    if isinstance(node, list):
        return [_settle(item, config) for item in node]
    if not isinstance(node, dict):
        return node
    settled = {key: _settle(value, config) for key, value in node.items() if key != "x-setting"}
    return settled | {key: config[name] for key, name in node.get("x-setting", {}).items()}

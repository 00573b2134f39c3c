"""The OpenAPI 3 description of every route, served at /openapi.json."""

from __future__ import annotations

import sys
from typing import Any

from flask import Blueprint, Flask, current_app

from api import auth, pixel_encoding

bp = Blueprint("openapi", __name__)

ID = {"type": "string", "pattern": "^[0-9a-f]{32}$"}
VERSION = {"type": "string", "pattern": "^[0-9a-f]{16}$"}
NULLABLE_TEXT = {"type": "string", "nullable": True}
ERROR = {"$ref": "#/components/responses/Error"}
IMAGE = {
    "type": "array",
    "items": {"type": "integer", "minimum": 0, "maximum": 255},
    "minItems": 784,
    "maxItems": 784,
}


@bp.get("/openapi.json")
def openapi_json() -> Any:
    """Serve the OpenAPI document."""
    return document(current_app)


def document(app: Flask) -> dict[str, Any]:
    """Return the OpenAPI 3.0 document for the app's routes and limits.

    A blueprint module may add its own routes as a module-level `OPENAPI_PATHS` dict.
    """
    paths = _paths(app.config)
    for blueprint in app.blueprints.values():
        paths |= getattr(sys.modules[blueprint.import_name], "OPENAPI_PATHS", {})
    described = {
        "openapi": "3.0.3",
        "info": {
            "title": "digits",
            "version": "1",
            "description": "Handwritten digits in, labels out: JSON pixels or Kaggle CSVs.",
        },
        "paths": paths,
        "components": {"schemas": _schemas(app.config), "responses": _responses()},
    }
    return auth.describe(described, app)


def _paths(config: Any) -> dict[str, Any]:
    images_body = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ImagesBody"}}},
    }
    wait = {
        "name": "wait",
        "in": "query",
        "required": False,
        "description": f"seconds to wait for the result (default {config['DIGITS_WAIT']:g})",
        "schema": {"type": "number", "minimum": 0, "maximum": config["DIGITS_MAX_WAIT"]},
    }
    encoding = pixel_encoding.PARAMETER
    body_errors = dict.fromkeys(("400", "413", "415", "422", "429", "503"), ERROR)
    return {
        "/healthz": {"get": _op("Liveness", {"200": _json("Health", "the process is up")})},
        "/readyz": {
            "get": _op(
                "Readiness: Redis answers, a model is active, a worker is alive",
                {"200": _json("Ready", "ready to serve"), "503": ERROR},
            )
        },
        "/openapi.json": {
            "get": _op("This document", {"200": _json("Document", "the OpenAPI document")})
        },
        "/v1/predict": {
            "post": _op(
                "Label images, waiting for the answer",
                {
                    "200": _json("JobFinished", "the labels"),
                    "202": _json("JobAccepted", "still running after the wait"),
                    "500": ERROR,
                    **body_errors,
                },
                parameters=[wait, encoding],
                requestBody=images_body,
            )
        },
        "/v1/jobs": {
            "post": _op(
                "Queue images and answer at once",
                {"202": _json("JobAccepted", "queued"), **body_errors},
                parameters=[encoding],
                requestBody=images_body,
            )
        },
        "/v1/jobs/{job_id}": {
            "get": _op(
                "A job's status and, once finished, its labels",
                {"200": _json("JobStatus", "the job"), "404": ERROR, "410": ERROR, "503": ERROR},
                parameters=[_path_id("job_id", ID)],
            )
        },
        "/v1/batches": {
            "post": _op(
                "Upload a Kaggle CSV (with or without a label column) to label every row",
                {"202": _json("BatchAccepted", "queued"), **body_errors},
                description=(
                    "The CSV as text/csv (Content-Encoding: gzip allowed), or Kaggle's zip (its "
                    "test.csv or its only CSV) or a .csv.gz as they are. A leading ImageId column "
                    "numbers the submission; a pandas index column is ignored; all-empty rows "
                    "are skipped and counted. Limits: MAX_CONTENT_LENGTH bytes as sent, "
                    "DIGITS_MAX_ROWS rows, and 6,400 bytes per row allowed uncompressed."
                ),
                parameters=[encoding],
                requestBody={
                    "required": True,
                    "content": {
                        "text/csv": {"schema": {"type": "string"}},
                        "application/zip": {"schema": {"type": "string", "format": "binary"}},
                        "application/gzip": {"schema": {"type": "string", "format": "binary"}},
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "properties": {"file": {"type": "string", "format": "binary"}},
                                "required": ["file"],
                            }
                        },
                    },
                },
            )
        },
        "/v1/batches/{batch_id}": {
            "get": _op(
                "A batch's progress",
                {"200": _json("Batch", "the batch"), "404": ERROR, "410": ERROR, "503": ERROR},
                parameters=[_path_id("batch_id", ID)],
            )
        },
        "/v1/batches/{batch_id}/submission.csv": _batch_csv(
            "The Kaggle submission (ImageId,Label) of a finished batch",
            "ImageId from the upload's ImageId column, else 1-based in upload order",
        ),
        "/v1/batches/{batch_id}/results.csv": _batch_csv(
            "Every row's label, confidence and uncertain flag of a finished batch",
            "ImageId,Label,Confidence,Uncertain; ImageId as in submission.csv, Confidence the "
            "calibrated top probability (4 decimals), Uncertain 1 or 0",
        ),
        "/v1/models": {
            "get": _op(
                "Published models, newest first",
                {"200": _json("Models", "the registry"), "503": ERROR},
            )
        },
        "/v1/models/{version}/activate": {
            "post": _op(
                "Make a published model current (switch or roll back)",
                {
                    "200": _json("Activated", "workers switch before their next job"),
                    "404": ERROR,
                    "409": ERROR,
                    "503": ERROR,
                },
                parameters=[_path_id("version", VERSION)],
            )
        },
    }


def _schemas(config: Any) -> dict[str, Any]:
    probabilities = {
        "type": "array",
        "items": {
            "type": "array",
            "items": {"type": "number"},
            "minItems": 10,
            "maxItems": 10,
        },
    }
    labels = {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 9}}
    confidence = {
        "type": "array",
        "description": "per image: the calibrated top probability",
        "items": {"type": "number", "minimum": 0, "maximum": 1},
    }
    uncertain = {
        "type": "array",
        "description": "per image: not sure, or not one digit; send it to a person",
        "items": {"type": "boolean"},
    }
    return {
        "ImagesBody": {
            "oneOf": [
                _closed({"pixels": IMAGE}),
                _closed(
                    {
                        "images": {
                            "type": "array",
                            "items": IMAGE,
                            "minItems": 1,
                            "maxItems": config["DIGITS_MAX_IMAGES"],
                        }
                    }
                ),
            ]
        },
        "Error": {
            "type": "object",
            "properties": {
                "error": _object(
                    {"code": {"type": "string"}, "message": {"type": "string"}},
                    ["code", "message"],
                ),
                "checks": {"$ref": "#/components/schemas/Checks"},
            },
            "required": ["error"],
        },
        "Health": _object({"status": {"type": "string", "enum": ["ok"]}}, ["status"]),
        "Checks": _object(
            {
                "redis": {"type": "boolean"},
                "model_version": NULLABLE_TEXT,
                "workers": {"type": "integer", "minimum": 0},
                "maxmemory_policy": NULLABLE_TEXT,
            },
            ["redis", "model_version", "workers", "maxmemory_policy"],
        ),
        "Ready": _object(
            {
                "status": {"type": "string", "enum": ["ready"]},
                "checks": {"$ref": "#/components/schemas/Checks"},
            },
            ["status", "checks"],
        ),
        "Document": {"type": "object", "required": ["openapi", "paths"]},
        "JobAccepted": _object(
            {
                "job_id": ID,
                "status": {"type": "string", "enum": ["queued"]},
                "status_url": {"type": "string"},
            },
            ["job_id", "status", "status_url"],
        ),
        "JobFinished": _object(
            {
                "job_id": ID,
                "status": {"type": "string", "enum": ["finished"]},
                "labels": labels,
                "probabilities": probabilities,
                "confidence": confidence,
                "uncertain": uncertain,
                "model_version": VERSION,
            },
            [
                "job_id",
                "status",
                "labels",
                "probabilities",
                "confidence",
                "uncertain",
                "model_version",
            ],
        ),
        "JobStatus": _object(
            {
                "job_id": ID,
                "status": {"type": "string", "enum": ["queued", "started", "finished", "failed"]},
                "labels": labels,
                "probabilities": probabilities,
                "confidence": confidence,
                "uncertain": uncertain,
                "model_version": VERSION,
                "error": {"type": "string"},
                "message": {"type": "string"},
            },
            ["job_id", "status"],
        ),
        "BatchAccepted": _object(
            {
                "batch_id": ID,
                "status": {"type": "string", "enum": ["queued"]},
                "rows": {"type": "integer", "minimum": 1},
                "chunks": {"type": "integer", "minimum": 1},
                "skipped_rows": {"type": "integer", "minimum": 0},
                "has_labels": {"type": "boolean"},
                "status_url": {"type": "string"},
                "submission_url": {"type": "string"},
            },
            [
                "batch_id",
                "status",
                "rows",
                "skipped_rows",
                "chunks",
                "has_labels",
                "status_url",
                "submission_url",
            ],
        ),
        "Batch": _object(
            {
                "batch_id": ID,
                "status": {"type": "string", "enum": ["queued", "running", "finished", "failed"]},
                "rows": {"type": "integer", "minimum": 1},
                "rows_done": {"type": "integer", "minimum": 0},
                "uncertain_rows": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "rows done so far flagged uncertain",
                },
                "chunks": {"type": "integer", "minimum": 1},
                "model_version": {**VERSION, "nullable": True},
                "model_versions": {"type": "array", "items": VERSION},
                "accuracy": {"type": "number", "minimum": 0, "maximum": 1, "nullable": True},
                "created_at": {"type": "string", "format": "date-time"},
                "started_at": {**NULLABLE_TEXT, "format": "date-time"},
                "finished_at": {**NULLABLE_TEXT, "format": "date-time"},
                "error": {"type": "string"},
                "message": {"type": "string"},
                "submission_url": {"type": "string"},
                "results_url": {"type": "string"},
            },
            [
                "batch_id",
                "status",
                "rows",
                "rows_done",
                "uncertain_rows",
                "chunks",
                "model_version",
                "model_versions",
                "created_at",
                "started_at",
                "finished_at",
                "submission_url",
                "results_url",
            ],
        ),
        "Model": _object(
            {
                "version": VERSION,
                "metadata": {"type": "object"},
                "published_at": {"type": "string", "format": "date-time"},
                "size": {"type": "integer", "minimum": 0},
                "current": {"type": "boolean"},
                "refused": {
                    **_object(
                        {
                            "error": {"type": "string"},
                            "at": {"type": "string", "format": "date-time"},
                        },
                        ["error", "at"],
                    ),
                    "nullable": True,
                    "description": "why a worker would not load it (it kept its model)",
                },
            },
            ["version", "metadata", "published_at", "size", "current", "refused"],
        ),
        "Models": _object(
            {
                "current": {**VERSION, "nullable": True},
                "models": {"type": "array", "items": {"$ref": "#/components/schemas/Model"}},
            },
            ["current", "models"],
        ),
        "Activated": _object(
            {"current": VERSION, "previous": {**VERSION, "nullable": True}},
            ["current", "previous"],
        ),
    }


def _responses() -> dict[str, Any]:
    return {
        "Error": {
            "description": "any error: {error: {code, message}}",
            "headers": {
                "Retry-After": {
                    "description": "on 429 and 503: seconds to wait before trying again",
                    "schema": {"type": "integer", "minimum": 1},
                }
            },
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    }


def _batch_csv(summary: str, description: str) -> dict[str, Any]:
    """A CSV of a finished batch: 409 until it is finished."""
    csv = {"description": description, "content": {"text/csv": {"schema": {"type": "string"}}}}
    responses = {"200": csv, **dict.fromkeys(("404", "409", "410", "503"), ERROR)}
    return {"get": _op(summary, responses, parameters=[_path_id("batch_id", ID)])}


def _op(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "responses": responses, **extra}


def _json(schema: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def _path_id(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required}


def _closed(properties: dict[str, Any]) -> dict[str, Any]:
    """An object of exactly these properties: the API refuses any other field."""
    return {**_object(properties, list(properties)), "additionalProperties": False}

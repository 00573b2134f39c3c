"""The model registry over HTTP: list published versions, switch or roll back."""

from __future__ import annotations

from typing import cast

from flask import Blueprint

from api import schemas
from api.errors import ApiError
from api.openapi import Operation
from api.services import services
from store import registry

bp = Blueprint("models", __name__, url_prefix="/v1")


@bp.get("/models")
@Operation({200: ("the registry", schemas.Models)}, errors=(503,))
def list_models() -> schemas.Models:
    """List published models, newest first: which is current, which a worker refused."""
    redis = services().redis
    current = registry.current(redis)
    refused = cast(dict[str, schemas.Refusal], registry.refusals(redis))
    models: list[schemas.Model] = [
        {
            "version": record.version,
            "metadata": record.metadata,
            "published_at": record.published_at,
            "size": record.size,
            "current": record.version == current,
            "refused": refused.get(record.version),
        }
        for record in registry.records(redis)
    ]
    return {"current": current, "models": models}


@bp.post("/models/<version>/activate")
@Operation(
    {200: ("workers switch before their next job", schemas.Activated)}, errors=(404, 409, 503)
)
def activate(version: str) -> schemas.Activated:
    """Make a published version current; workers switch before their next job."""
    try:
        previous = registry.activate(services().redis, version)
    except registry.UnknownModel:
        raise ApiError(404, "not_found", f"no published model {version!r}") from None
    except registry.CorruptModel as error:
        raise ApiError(409, "corrupt_model", str(error)) from None
    return {"current": version, "previous": previous}

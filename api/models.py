"""The model registry over HTTP: list published versions, switch or roll back."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask import Blueprint

from api.errors import ApiError
from api.services import services
from store import registry

bp = Blueprint("models", __name__, url_prefix="/v1")


@bp.get("/models")
def list_models() -> Any:
    """List published models, newest first: which is current, which a worker refused."""
    redis = services().redis
    current = registry.current(redis)
    refused = registry.refusals(redis)
    models = [
        asdict(record)
        | {"current": record.version == current, "refused": refused.get(record.version)}
        for record in registry.records(redis)
    ]
    return {"current": current, "models": models}


@bp.post("/models/<version>/activate")
def activate(version: str) -> Any:
    """Make a published version current; workers switch before their next job."""
    try:
        previous = registry.activate(services().redis, version)
    except registry.UnknownModel:
        raise ApiError(404, "not_found", f"no published model {version!r}") from None
    except registry.CorruptModel as error:
        raise ApiError(409, "corrupt_model", str(error)) from None
    return {"current": version, "previous": previous}

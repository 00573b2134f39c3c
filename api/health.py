"""Liveness and readiness: is the process up, and can it serve predictions now?"""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from redis.exceptions import RedisError

from api import schemas
from api.errors import RETRY_AFTER_SECONDS, error_response
from api.openapi import Operation
from api.services import services
from store import eviction, liveness, registry

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@Operation({200: ("the process is up", schemas.Health)})
def healthz() -> schemas.Health:
    """Liveness: answer while the process runs."""
    return {"status": "ok"}


@bp.get("/readyz")
@Operation({200: ("ready to serve", schemas.Ready)}, errors=(503,))
def readyz() -> Any:
    """Readiness: 200 when Redis answers, a model is current and a worker is alive; else 503."""
    found = services()
    try:
        found.redis.ping()
        checks: schemas.Checks = {
            "redis": True,
            "model_version": registry.current(found.redis),
            "workers": liveness.live_workers(found.predict_queue),
            "maxmemory_policy": eviction.policy(found.redis),
        }
    except RedisError:
        checks = {"redis": False, "model_version": None, "workers": 0, "maxmemory_policy": None}
    problems = _problems(checks, bool(found.config["DIGITS_ALLOW_EVICTION"]))
    if not problems:
        return {"status": "ready", "checks": checks}
    response = error_response(503, "not_ready", "; ".join(problems), checks=checks)
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def _problems(checks: schemas.Checks, allow_eviction: bool) -> list[str]:
    if not checks["redis"]:
        return ["Redis does not answer"]
    problems = []
    policy = checks["maxmemory_policy"]
    evicting = None if policy is None else eviction.problem(policy)
    if evicting is not None and not allow_eviction:
        problems.append(evicting)
    if checks["model_version"] is None:
        problems.append("no model is active (digits publish PATH --activate)")
    if checks["workers"] == 0:
        problems.append("no worker is alive (digits worker)")
    return problems

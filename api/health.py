"""Liveness and readiness: is the process up, and can it serve predictions now?"""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from rq.worker import BaseWorker
from rq.worker_registration import get_keys

from api.errors import RETRY_AFTER_SECONDS, error_response
from api.services import services
from store import keys, liveness, registry

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Any:
    """Answer while the process runs."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz() -> Any:
    """Answer 200 when Redis answers, a model is current and a worker is alive; else 503."""
    found = services()
    try:
        found.redis.ping()
        checks: dict[str, Any] = {
            "redis": True,
            "model_version": registry.current(found.redis),
            "workers": live_workers(found.redis, found.predict_queue),
        }
    except RedisError:
        checks = {"redis": False, "model_version": None, "workers": 0}
    problems = _problems(checks)
    if not problems:
        return {"status": "ready", "checks": checks}
    response = error_response(503, "not_ready", "; ".join(problems), checks=checks)
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def live_workers(redis: Redis, queue: Queue) -> int:
    """Count the workers on `queue` that are alive: RQ's key is there and they beat.

    RQ keeps a killed worker's key for a minute or more; its beat (store.liveness) stops
    at once, so a worker that has not beaten for DEAD_AFTER seconds is not counted.
    """
    worker_keys = sorted(get_keys(queue=queue))
    if not worker_keys:
        return 0
    names = [key.removeprefix(BaseWorker.redis_worker_namespace_prefix) for key in worker_keys]
    pipe = redis.pipeline(transaction=False)
    pipe.time()
    pipe.zmscore(keys.WORKER_BEATS, names)
    for key in worker_keys:
        pipe.exists(key)
    (seconds, microseconds), beats, *present = pipe.execute()
    cutoff = seconds + microseconds / 1e6 - liveness.DEAD_AFTER
    beating = [beat is None or beat > cutoff for beat in beats]  # None: never beat, plain RQ
    return sum(bool(found) and fresh for found, fresh in zip(present, beating, strict=True))


def _problems(checks: dict[str, Any]) -> list[str]:
    if not checks["redis"]:
        return ["Redis does not answer"]
    problems = []
    if checks["model_version"] is None:
        problems.append("no model is active (digits publish PATH --activate)")
    if checks["workers"] == 0:
        problems.append("no worker is alive (digits worker)")
    return problems

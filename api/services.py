"""The app's connections: one Redis client and its RQ queues, made once per app."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app
from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer

from api.backpressure import QueueDepth, WorkerCheck
from store import connection, keys
from store.inbox import Inbox


@dataclass(frozen=True)
class Services:
    """What every view needs: Redis, the queues, the settings."""

    redis: Redis
    predict_queue: Queue
    batch_queue: Queue
    config: dict[str, Any]
    predict_workers: WorkerCheck  # is a worker alive to answer a caller who waits?
    predict_depth: QueueDepth  # jobs waiting on the predict queue, as last seen
    inbox: Inbox  # where this process's waiting callers get their answers


def connect(config: dict[str, Any]) -> Services:
    """Create the Redis client (lazy: nothing is sent until used) and the queues."""
    redis = connection.connect(
        config["REDIS_URL"],
        socket_connect_timeout=2,
        # A blocking read waits up to DIGITS_MAX_WAIT; anything slower is a dead server.
        socket_timeout=float(config["DIGITS_MAX_WAIT"]) + 5,
        health_check_interval=30,
        max_connections=config["DIGITS_REDIS_CONNECTIONS"],
    )
    predict_queue = Queue(keys.PREDICT_QUEUE, connection=redis, serializer=JSONSerializer)
    return Services(
        redis=redis,
        predict_queue=predict_queue,
        batch_queue=Queue(keys.BATCH_QUEUE, connection=redis, serializer=JSONSerializer),
        config=config,
        predict_workers=WorkerCheck(predict_queue),
        predict_depth=QueueDepth(predict_queue),
        inbox=Inbox(redis),
    )


def services() -> Services:
    """Return the current app's services."""
    found: Services = current_app.extensions["digits"]
    return found

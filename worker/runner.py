"""Start an RQ worker that loads the model first and runs every job in its own process."""

from __future__ import annotations

import logging

from redis import Redis
from rq import Queue, SimpleWorker
from rq.serializers import JSONSerializer
from threadpoolctl import threadpool_limits

from worker import jobs, keys

# Short enough that /readyz stops counting a killed worker within half a minute; the worker
# refreshes it every WORKER_TTL - 15 s while idle and after every job.
WORKER_TTL = 30

log = logging.getLogger(__name__)


def build(connection: Redis) -> SimpleWorker:
    """Return a non-forking worker on both queues, single requests first."""
    queues = [
        Queue(name, connection=connection, serializer=JSONSerializer)
        for name in (keys.PREDICT_QUEUE, keys.BATCH_QUEUE)
    ]
    return SimpleWorker(
        queues, connection=connection, serializer=JSONSerializer, worker_ttl=WORKER_TTL
    )


def run(
    connection: Redis,
    burst: bool = False,
    logging_level: str = "WARNING",
    blas_threads: int | None = 1,
) -> bool:
    """Preload the current model, then work; return whether any job ran.

    Workers scale by process, one per core: a BLAS pool per worker on top of that
    oversubscribes the cores (measured 10x slower per job under load), so it defaults to 1.
    """
    with threadpool_limits(limits=blas_threads):
        version = jobs.preload(connection)
        log.info("worker starting with model %s", version or "(none active yet)")
        return build(connection).work(burst=burst, logging_level=logging_level)

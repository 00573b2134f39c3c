"""Start an RQ worker that loads the model first and runs every job in its own process."""

from __future__ import annotations

import logging
from datetime import timedelta

from redis import Redis
from redis.client import Pipeline
from rq import Queue, SimpleWorker
from rq.serializers import JSONSerializer
from rq.utils import now
from threadpoolctl import threadpool_limits

from worker import jobs, keys

# An idle worker wakes every WORKER_TTL - 15 s to beat; its key expires WORKER_TTL + 60 s
# after the last beat, which is how long /readyz may count a killed worker.
WORKER_TTL = 30

# Standalone heartbeats closer together than this are skipped: the worker key lives
# WORKER_TTL + 60 s, and RQ sends several per job (two round trips each).
HEARTBEAT_INTERVAL = timedelta(seconds=1)

log = logging.getLogger(__name__)


class Worker(SimpleWorker):
    """RQ's non-forking worker without its redundant writes between jobs.

    Per job RQ beats about five times and writes the same state twice; on the path from
    dequeue to result that was two round trips of eight (profiled: ~20% of a job's CPU).
    """

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        """Extend the worker key's TTL, at most once per HEARTBEAT_INTERVAL outside pipelines."""
        last = self.last_heartbeat
        if pipeline is None and timeout is None and last and now() - last < HEARTBEAT_INTERVAL:
            return
        super().heartbeat(timeout, pipeline)

    def set_state(self, state: str, pipeline: Pipeline | None = None) -> None:
        """Write the worker's state when it changes (always inside RQ's pipelines)."""
        if pipeline is None and state == self.get_state():
            return
        super().set_state(state, pipeline)


def build(connection: Redis) -> Worker:
    """Return a non-forking worker on both queues, single requests first."""
    queues = [
        Queue(name, connection=connection, serializer=JSONSerializer)
        for name in (keys.PREDICT_QUEUE, keys.BATCH_QUEUE)
    ]
    return Worker(queues, connection=connection, serializer=JSONSerializer, worker_ttl=WORKER_TTL)


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

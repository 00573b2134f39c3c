"""Start an RQ worker that loads the model first and runs every job in its own process."""

from __future__ import annotations

import logging
import signal
import threading
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timedelta
from typing import Any

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import RedisError
from rq import Queue, SimpleWorker
from rq.job import Job
from rq.serializers import JSONSerializer
from rq.utils import now
from rq.worker import WorkerStatus
from threadpoolctl import threadpool_limits

from config import settings
from config.settings import DEFAULTS, Settings
from store import jobstats, keys
from worker import jobs, recovery, streams
from worker.queues import IDLE_WAIT, ClaimingQueue

# Standalone heartbeats closer together than this are skipped: the worker key lives
# DIGITS_WORKER_TTL + 60 s, and RQ sends several per job (two round trips each). Not a
# setting: it only trims RQ's writes, far inside any TTL an operator would choose.
HEARTBEAT_INTERVAL = timedelta(seconds=1)

log = logging.getLogger(__name__)


class Worker(SimpleWorker):
    """RQ's non-forking worker without its redundant writes between jobs.

    Per job RQ beats about five times and writes the same state twice; on the path from
    dequeue to result that was two round trips of eight (profiled: ~20% of a job's CPU).
    Between two jobs it also asks Redis whether `rq suspend` was run, and writes "idle" for
    a worker that takes the next job at once: here the first at most once per
    HEARTBEAT_INTERVAL, the second only once the worker has waited IDLE_WAIT for work.
    """

    stopping = False  # set by SIGINT/SIGTERM: `run` must not start the worker over
    max_connection_wait_time = 5.0  # longest pause between tries to reach a lost Redis

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tally = jobstats.Tally()  # this worker's job counters, written once a second
        self._suspension_checked: datetime | None = None
        self._idle_since: datetime | None = None  # idle, not yet written to Redis

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        """Extend the worker key's TTL, at most once per HEARTBEAT_INTERVAL outside pipelines.

        RQ calls it after each job and every IDLE_WAIT while idle: the job counters due go
        to Redis then.
        """
        if pipeline is None:
            self.tally.flush(self.connection, due_only=True)
            idle_since = self._idle_since
            if idle_since is not None and (now() - idle_since).total_seconds() >= IDLE_WAIT:
                super().set_state(WorkerStatus.IDLE)
                self._idle_since = None
        last = self.last_heartbeat
        if pipeline is None and timeout is None and last and now() - last < HEARTBEAT_INTERVAL:
            return
        super().heartbeat(timeout, pipeline)

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        """Mark the job started, and take it off the intermediate list it was claimed onto."""
        super().prepare_job_execution(job, remove_from_intermediate_queue=True)

    def handle_warm_shutdown_request(self) -> None:
        """Remember that a stop was asked for."""
        self.stopping = True
        super().handle_warm_shutdown_request()

    def set_state(self, state: str, pipeline: Pipeline | None = None) -> None:
        """Write the worker's state when it changes (always inside RQ's pipelines); "idle"
        once the worker has waited IDLE_WAIT for a job (`heartbeat` writes it then)."""
        if pipeline is None and state == self.get_state():
            return
        if pipeline is None and state == WorkerStatus.IDLE:
            self._state = state  # what RQ's own get_state() reads
            self._idle_since = now()
            return
        self._idle_since = None
        super().set_state(state, pipeline)

    def check_for_suspension(self, burst: bool) -> None:
        """Ask Redis whether `rq suspend` was run, at most once per HEARTBEAT_INTERVAL."""
        checked = self._suspension_checked
        if checked is not None and now() - checked < HEARTBEAT_INTERVAL:
            return
        self._suspension_checked = now()
        super().check_for_suspension(burst)

    def perform_job(self, job: Job, queue: Queue) -> bool:
        """Run the job, then log its line and add it to the service's job counters."""
        with jobs.CACHE.lock:  # the stream consumer waits (worker.streams)
            finished = super().perform_job(job, queue)
        jobstats.report(jobstats.measure(job, finished), self.tally)
        return finished


def build(connection: Redis, worker_ttl: int = DEFAULTS["DIGITS_WORKER_TTL"]) -> Worker:
    """Return a non-forking worker on both queues, single requests first.

    An idle worker's RQ key expires `worker_ttl` + 60 s after its last heartbeat; /readyz
    stops counting a killed worker sooner, when its lifeline beat stops (worker.recovery).
    """
    queues = [
        ClaimingQueue(name, connection=connection, serializer=JSONSerializer)
        for name in (keys.PREDICT_QUEUE, keys.BATCH_QUEUE)
    ]
    return Worker(
        queues,
        connection=connection,
        serializer=JSONSerializer,
        worker_ttl=worker_ttl,
        queue_class=ClaimingQueue,
    )


def run(connection: Redis, config: Settings | None = None, burst: bool = False) -> bool:
    """Preload the current model, then work; return whether any job ran.

    `config` is `config.settings.load()` unless given. Workers scale by process, one per
    core: a BLAS pool per worker on top of that oversubscribes the cores (measured 10x slower
    per job under load), so DIGITS_BLAS_THREADS defaults to 1. A worker that loses Redis (or
    finds none) waits for it and starts over, under a new name.
    """
    config = settings.load() if config is None else config
    with threadpool_limits(limits=config["DIGITS_BLAS_THREADS"]):
        worked = False
        while True:
            ran, stopping = _work_once(connection, config, burst)
            worked = worked or ran
            if burst or stopping or not _reconnect(connection):
                return worked


def _work_once(connection: Redis, config: Settings, burst: bool) -> tuple[bool, bool]:
    """Run one worker until it ends or loses Redis: (whether a job ran, whether to stop)."""
    worker: Worker | None = None
    # RQ logs three lines per job; the JSON job line (store/jobstats.py) replaces them.
    rq_level = "DEBUG" if config["DIGITS_LOG_LEVEL"].upper() == "DEBUG" else "WARNING"
    try:
        worker = build(connection, config["DIGITS_WORKER_TTL"])  # RQ asks Redis already
        version = jobs.preload(connection)
        log.info("worker starting with model %s", version or "(none active yet)")
        lifeline = recovery.Lifeline(
            connection, worker, config["DIGITS_SWEEP_INTERVAL"], config["DIGITS_MAX_RECOVERIES"]
        )
        with lifeline, _streams(connection, worker.name, burst, config):
            return worker.work(burst=burst, logging_level=rq_level), worker.stopping
    except RedisError as error:
        log.error("worker lost Redis: %s", error)
        return False, worker is not None and worker.stopping
    finally:
        if worker is not None:
            worker.tally.flush(connection)
            _retire(worker)


def _streams(
    connection: Redis, name: str, burst: bool, config: Settings
) -> AbstractContextManager[None]:
    """Consume the streams beside the RQ loop, except in burst mode (queues only)."""
    if burst:
        return nullcontext()
    return streams.consuming(connection, name, streams.Settings.from_config(config))


def _retire(worker: Worker) -> None:
    """Stop the thread RQ left listening for commands when the worker lost Redis mid-way."""
    if worker.pubsub_thread is not None and worker.pubsub_thread.is_alive():
        worker.pubsub_thread.stop()


def _reconnect(connection: Redis) -> bool:
    """Wait for Redis to answer again (True), unless SIGINT or SIGTERM comes first (False).

    The process stays up: a supervisor restarting it would only find Redis still gone.
    """
    stop = threading.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.signal(signum, lambda *_: stop.set()) for signum in signals}
    try:
        return recovery.wait_for_redis(connection, stop)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

"""Recovery from dead workers and from a Redis that went away.

Every worker beats from a background thread: it writes Redis's own clock into a sorted
set once per BEAT_INTERVAL, whatever its job is doing. A worker whose beat is older than
DEAD_AFTER is dead (killed, out of memory, its machine gone). One live worker at a time
sweeps: each job that a dead worker had taken (started, or only claimed off its queue, see
`worker.queues`) goes back to the front of its queue, so a lost batch chunk runs again
within seconds instead of after RQ's job timeout. A job whose workers keep dying under it
(a poison pill) fails after DIGITS_MAX_RECOVERIES re-runs.

A worker only judges others after it has itself beaten for DEAD_AFTER without a break: after
Redis comes back from a restart, every live worker has beaten again before anyone sweeps.

RQ's records are read and changed through RQ's public API (`Execution.delete`, its
registries, `Queue.enqueue_job`). Two sweeps that overlap (the sweep lock lapsed) requeue a
job once: only the sweep whose delete removed something, or whose LREM took the id, does.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from types import TracebackType

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from rq.exceptions import AbandonedJobError, NoSuchJobError
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry
from rq.worker import BaseWorker

from config.settings import DEFAULTS
from store import keys
from store.liveness import BEAT_INTERVAL, DEAD_AFTER, beat, dead_workers, texts

RECONNECT_DELAYS = (0.5, 1.0, 2.0, 4.0, 5.0)  # seconds between tries to reach Redis again
ENDED = {JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED}

log = logging.getLogger(__name__)


class Lifeline:
    """Beat for one worker in a background thread and sweep for dead ones, while in use.

    Some worker sweeps every `sweep_interval` seconds; a job is run again `max_recoveries`
    times at most.
    """

    def __init__(
        self,
        connection: Redis,
        worker: BaseWorker,
        sweep_interval: float = DEFAULTS["DIGITS_SWEEP_INTERVAL"],
        max_recoveries: int = DEFAULTS["DIGITS_MAX_RECOVERIES"],
    ) -> None:
        self.connection = connection
        self.worker = worker
        self.sweep_interval = sweep_interval
        self.max_recoveries = max_recoveries
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lifeline", daemon=True)

    def __enter__(self) -> Lifeline:
        beat(self.connection, self.worker.name)  # before any job, so no job is ever unowned
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=BEAT_INTERVAL + 5)

    def _run(self) -> None:
        beating_since: float | None = time.monotonic()
        while not self._stop.wait(BEAT_INTERVAL):
            try:
                beat(self.connection, self.worker.name)
                beating_since = beating_since or time.monotonic()
                if time.monotonic() - beating_since >= DEAD_AFTER and self._take_turn():
                    sweep(self.connection, self.worker.queues, self.max_recoveries)
            except RedisError as error:
                if beating_since is not None:
                    log.warning("worker %s cannot beat: %s", self.worker.name, error)
                beating_since = None
            except Exception:
                log.exception("sweep for dead workers failed")

    def _take_turn(self) -> bool:
        """Claim the next sweep: one worker sweeps per sweep interval."""
        lock = self.connection.set(
            keys.RECOVERY_LOCK, self.worker.name, nx=True, px=int(self.sweep_interval * 1000)
        )
        return bool(lock)


def sweep(
    connection: Redis,
    queues: Sequence[Queue],
    max_recoveries: int = DEFAULTS["DIGITS_MAX_RECOVERIES"],
) -> list[str]:
    """Queue again the jobs dead workers had taken (at most `max_recoveries` times); their ids.

    Those are the jobs a dead worker had started, and the jobs taken off a queue that no
    worker started within DEAD_AFTER (their worker died between the two steps).
    """
    seconds, microseconds = connection.time()
    now = seconds + microseconds / 1e6
    dead = dead_workers(connection, now)
    beating = texts(connection.zrange(keys.WORKER_BEATS, 0, -1))
    recovered = []
    for queue in queues:
        # Claimed before started: a job moves from the first to the second, never back.
        claimed = set(queue.intermediate_queue.get_job_ids())
        started = _started(connection, queue)
        for job_id, execution in started.items():
            owner = execution.worker_name
            if owner and _is_dead(connection, owner, dead, beating) and _end(queue, execution):
                recovered += _requeue(connection, queue, job_id, max_recoveries)
        for job_id in claimed - started.keys():
            # LREM's count makes one sweep the taker (RQ's IntermediateQueue.remove returns none).
            if _unstarted_since(connection, job_id, now) <= now - DEAD_AFTER and connection.lrem(
                queue.intermediate_queue_key, 0, job_id
            ):
                recovered += _requeue(connection, queue, job_id, max_recoveries)
    _forget(connection, dead)
    return recovered


def _forget(connection: Redis, dead: set[str]) -> None:
    """Drop dead workers' beats once RQ has dropped them too: until then they mark them dead."""
    names = sorted(dead)
    prefix = BaseWorker.redis_worker_namespace_prefix
    gone = [name for name in names if not connection.exists(prefix + name)]
    if gone:
        connection.zrem(keys.WORKER_BEATS, *gone)


def _started(connection: Redis, queue: Queue) -> dict[str, Execution]:
    """Map the id of each job the queue's started registry holds to its execution.

    An execution whose record has expired is left out: its worker is unknown.
    """
    found = {}
    registry = queue.started_job_registry
    for job_id, execution_id in registry.get_job_and_execution_ids(cleanup=False):
        try:
            found[job_id] = Execution.fetch(execution_id, job_id, connection=connection)
        except ValueError:  # RQ's word for an execution record that is gone
            continue
    return found


def _end(queue: Queue, execution: Execution) -> bool:
    """Delete a dead worker's execution from RQ's records; True when this sweep deleted it.

    `Execution.delete` runs in one MULTI: a sweep that finds it already gone requeues nothing.
    """
    try:
        job = Job.fetch(execution.job_id, connection=queue.connection, serializer=queue.serializer)
    except NoSuchJobError:
        queue.started_job_registry.remove_execution(execution)
        return False
    with queue.connection.pipeline() as pipe:
        execution.delete(job=job, pipeline=pipe)
        return any(pipe.execute())


def _unstarted_since(connection: Redis, job_id: str, now: float) -> float:
    """Return when a sweep first saw the job taken but not started (now, the first time)."""
    key = keys.job_orphaned(job_id)
    connection.set(key, repr(now), nx=True, ex=int(DEAD_AFTER * 10))
    return float(connection.get(key) or now)


def _is_dead(connection: Redis, name: str, dead: set[str], beating: set[str]) -> bool:
    if name in beating:
        return name in dead
    # A worker that never beat (a plain `rq worker`) is judged by RQ's own worker key.
    return not connection.exists(BaseWorker.redis_worker_namespace_prefix + name)


def _requeue(connection: Redis, queue: Queue, job_id: str, max_recoveries: int) -> list[str]:
    """Put the job at the front of its queue ([its id]), or fail it after max_recoveries ([])."""
    queue.intermediate_queue.remove(job_id)
    connection.delete(keys.job_orphaned(job_id))
    try:
        job = Job.fetch(job_id, connection=connection, serializer=queue.serializer)
    except NoSuchJobError:
        return []
    if job.get_status(refresh=False) in ENDED:
        return []
    recoveries = int(job.meta.get("recoveries", 0)) + 1
    if recoveries > max_recoveries:
        _fail(connection, queue, job, recoveries - 1)
        return []
    job.meta["recoveries"] = recoveries
    job.save_meta()
    queue.enqueue_job(job, at_front=True)
    log.warning("job %s: its worker died; queued again (re-run %d)", job.id, recoveries)
    return [job_id]


def _fail(connection: Redis, queue: Queue, job: Job, runs: int) -> None:
    message = f"the workers that took it died before finishing it, {runs + 1} times"
    log.error("job %s failed: %s", job.id, message)
    if job.failure_callback is not None:
        job.failure_callback(job, connection, AbandonedJobError, AbandonedJobError(message), None)
    with connection.pipeline() as pipe:
        job.set_status(JobStatus.FAILED, pipeline=pipe)
        reason = f"AbandonedJobError: {message}"
        FailedJobRegistry(queue=queue).add(job, job.failure_ttl, reason, pipeline=pipe)
        pipe.execute()


def wait_for_redis(connection: Redis, stop: threading.Event) -> bool:
    """Block until Redis answers (True) or `stop` is set (False), pausing longer each try."""
    attempt = 0
    while not stop.wait(RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)]):
        try:
            connection.ping()
            return True
        except RedisError as error:
            log.warning("Redis does not answer (%s); trying again", error)
            attempt += 1
    return False

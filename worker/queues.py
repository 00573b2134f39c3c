"""The worker's queues: a job is taken by moving it, never held only in a worker's memory.

RQ pops from several queues with BLPOP. A job popped by a worker that dies (or loses Redis)
before it records the job as started is then nowhere: not queued, not started, lost.
`ClaimingQueue` instead moves the job's id onto the queue's intermediate list in the same
command that takes it off the queue, and the worker removes it from there once the job is
in the started registry. An id left on an intermediate list is found by `worker.recovery`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from redis import Redis
from rq import Queue
from rq.exceptions import DequeueTimeout, NoSuchJobError
from rq.job import Job
from rq.serializers import Serializer
from rq.timeouts import BaseDeathPenalty
from rq.utils import as_text

from store import lua

# Longest single wait on an idle predict queue: batch chunks that arrive meanwhile are
# taken at most this late, since one blocking move can watch only one queue. An idle
# worker so sends Redis two cheap commands per IDLE_WAIT.
IDLE_WAIT = 0.2

# KEYS: queue, its intermediate list, next queue, its list, ... in priority order.
_CLAIM = lua.script(
    """
for i = 1, #KEYS, 2 do
  local job_id = redis.call('LMOVE', KEYS[i], KEYS[i + 1], 'LEFT', 'RIGHT')
  if job_id then return {KEYS[i], job_id} end
end
return false
"""
)


class ClaimingQueue(Queue):
    """An RQ queue whose jobs are taken by an atomic move onto its intermediate list."""

    @classmethod
    def dequeue_any(
        cls,
        queues: Iterable[Queue],
        timeout: int | None,
        connection: Redis,
        job_class: type[Job] | None = None,
        serializer: Serializer | str | None = None,
        death_penalty_class: type[BaseDeathPenalty] | None = None,
    ) -> tuple[Job, Queue] | None:
        """Take the first job of the first non-empty queue; wait up to `timeout` if none."""
        ordered = list(queues)
        while True:
            claimed = _claim(connection, ordered, timeout)
            if claimed is None:
                return None
            queue_key, job_id = claimed
            queue = cls.from_queue_key(
                queue_key,
                connection=connection,
                job_class=job_class,
                serializer=serializer,
                death_penalty_class=death_penalty_class,
            )
            try:
                job = Job.fetch(job_id, connection=connection, serializer=queue.serializer)
            except NoSuchJobError:  # its queue TTL ran out: nobody wants it any more
                queue.intermediate_queue.remove(job_id)
                continue
            return job, queue


def _claim(connection: Redis, queues: list[Queue], timeout: int | None) -> tuple[str, str] | None:
    """Move one job id to its intermediate list: (queue key, job id), or None in burst mode."""
    names = [name for queue in queues for name in (queue.key, queue.intermediate_queue_key)]
    found: Any = lua.run(connection, _CLAIM, names)
    if found:
        return as_text(found[0]), as_text(found[1])
    if timeout is None:
        return None
    first = queues[0]
    wait: Any = min(float(timeout), IDLE_WAIT)  # redis-py's hint says int; Redis takes seconds
    job_id = connection.blmove(first.key, first.intermediate_queue_key, wait)
    if job_id is None:
        raise DequeueTimeout(timeout, first.key)
    return first.key, as_text(job_id)

"""Fail loudly when RQ's internals that the worker overrides move.

`worker.runner.Worker` and `worker.queues.ClaimingQueue` override methods of RQ 2.12 that are
not its public API; pyproject.toml pins that minor version. Each override must still match
the signature of the method it replaces, so a new RQ that renames a parameter or drops a
method is caught here, not in production.
"""

from __future__ import annotations

import inspect

import pytest
import rq
from redis import Redis
from rq import Queue, SimpleWorker

from worker.queues import ClaimingQueue
from worker.runner import Worker

OVERRIDES = [
    (Worker, SimpleWorker, "heartbeat"),
    (Worker, SimpleWorker, "prepare_job_execution"),
    (Worker, SimpleWorker, "handle_warm_shutdown_request"),
    (Worker, SimpleWorker, "set_state"),
    (Worker, SimpleWorker, "check_for_suspension"),
    (Worker, SimpleWorker, "perform_job"),
    (ClaimingQueue, Queue, "dequeue_any"),
]


def parameters(function: object) -> list[tuple[str, object]]:
    """Return (name, kind) of each parameter: names and order are what callers rely on."""
    return [(p.name, p.kind) for p in inspect.signature(function).parameters.values()]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ours", "theirs", "name"), OVERRIDES, ids=lambda x: getattr(x, "__name__", x)
)
def test_each_override_matches_the_method_it_replaces(ours: type, theirs: type, name: str) -> None:
    assert name in vars(ours), f"{ours.__name__}.{name} is no longer overridden"
    assert hasattr(theirs, name), f"RQ {rq.__version__} has no {theirs.__name__}.{name}"
    assert parameters(getattr(ours, name)) == parameters(getattr(theirs, name))


def test_rq_is_the_pinned_minor_version() -> None:
    assert rq.__version__.startswith("2.12."), (
        f"overrides were written for RQ 2.12, found {rq.__version__}"
    )


def test_the_internals_the_worker_reads_are_there() -> None:
    queue = Queue("probe", connection=Redis())  # a client object only: nothing is sent
    assert queue.intermediate_queue_key == "rq:queue:probe:intermediate"  # recovery scans these
    assert inspect.signature(SimpleWorker.prepare_job_execution).parameters[
        "remove_from_intermediate_queue"
    ]

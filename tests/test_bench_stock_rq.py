"""The stock RQ reference of `digits bench throughput` runs real jobs through RQ as shipped."""

from __future__ import annotations

from rq.job import JobStatus

from scripts.bench.stock_rq import WARM_UP_JOBS, run_jobs, stock_rq


def test_every_job_runs_on_the_stock_worker_and_is_timed() -> None:
    with stock_rq("SimpleWorker") as queue:
        measured = run_jobs(queue, 5)
        finished = queue.finished_job_registry.get_job_ids()
        statuses = {queue.fetch_job(job_id).get_status() for job_id in finished}

    assert len(measured.latencies) == 5
    assert all(latency > 0 for latency in measured.latencies)
    assert measured.seconds >= sum(measured.latencies) / 1e3
    assert measured.p50 <= measured.p99
    # The warm-up's jobs and the timed ones, each finished by the worker (not just queued).
    assert len(finished) == WARM_UP_JOBS + 5
    assert statuses == {JobStatus.FINISHED}

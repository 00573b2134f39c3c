"""Job counters: a worker adds its jobs up in memory and writes them at most once a second."""

from __future__ import annotations

import numpy as np
import pytest
from flask.testing import FlaskClient
from monitor import commands_sent
from redis import Redis

from store import jobstats, keys


def _stats(queue_wait: float, rows: int = 1) -> jobstats.JobStats:
    return jobstats.JobStats(
        job_id="a" * 32,
        queue=keys.PREDICT_QUEUE,
        outcome="finished",
        rows=rows,
        model_version="v",
        queue_wait=queue_wait,
        compute=0.002,
    )


def test_a_tally_writes_its_jobs_in_one_round_trip_once_due(redis_conn: Redis) -> None:
    tally = jobstats.Tally()
    for wait in (0.0005, 0.003, 0.2):
        tally.add(_stats(wait, rows=2))
    with commands_sent(redis_conn) as early:
        tally.flush(redis_conn, due_only=True)  # made just now: not due yet
    with commands_sent(redis_conn) as sent:
        tally.flush(redis_conn)
        tally.flush(redis_conn)  # nothing left to write

    assert early == []
    assert set(sent) == {"HINCRBY", "HINCRBYFLOAT"}  # one pipeline, sent once
    totals = jobstats.read(redis_conn)
    assert totals.jobs[(keys.PREDICT_QUEUE, "finished")] == 3
    assert totals.rows[keys.PREDICT_QUEUE] == 6
    waits = totals.histograms[("queue_wait", keys.PREDICT_QUEUE)]
    assert dict(waits.buckets)[0.001] == 1 and dict(waits.buckets)[0.25] == 3
    assert abs(waits.total - 0.2035) < 1e-9


def test_a_worker_writes_its_counters_when_due_not_once_a_job(
    client: FlaskClient,
    service,
    published: dict,
    pixels: np.ndarray,
    redis_conn: Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(jobstats, "FLUSH_INTERVAL", 60.0)  # never due while these jobs run
    for image in pixels[:6]:
        assert client.post("/v1/jobs", json={"pixels": image.tolist()}).status_code == 202
    with commands_sent(redis_conn) as sent:
        service.work()

    # RQ adds each job's working time to its worker's record (6), and ours are three sums
    # (rows, queue wait, compute) in the one write as it stops: one write per job made 6 + 18.
    assert sent.count("HINCRBYFLOAT") == 6 + 3
    totals = jobstats.read(redis_conn)
    assert totals.jobs[(keys.PREDICT_QUEUE, "finished")] == 6  # all there once it stops

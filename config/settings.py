"""Settings: defaults, overridden by the environment, overridden by the caller.

One plain dict for every process, shaped as Flask's `app.config` (flaskr): the API puts it in
`app.config`, a worker and the `digits` commands read it as it is. Each setting is read from
the environment variable of the same name, typed like its default; the caller's overrides
(the app factory's test settings, a command's flags) come last.

Not settings: what every process must agree on to work together (a worker's beat interval
and the silence after which it is dead, `store.liveness`; key names, `store.keys`), and the
MNIST image shape (`formats.mnist`). DIGITS_DATA_DIR, the MNIST cache that `digits up` also
keeps an embedded Redis's file in, is read by `model.data`: the training code imports
nothing of the service.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from store import streams

Settings = dict[str, Any]

DEFAULTS: Settings = {
    # Every process.
    "REDIS_URL": "redis://127.0.0.1:6379/0",  # `digits up` embeds a Redis when none answers here
    "DIGITS_LOG_LEVEL": "INFO",  # the JSON request and job lines are INFO
    "DIGITS_ALLOW_EVICTION": False,  # run, and report ready, on a Redis whose policy evicts
    "DIGITS_STREAMS": "",  # comma-separated stream names that exist without POST /v1/streams/NAME
    "DIGITS_STREAM_MAXLEN": streams.DEFAULT_MAXLEN,  # answers kept per stream (MAXLEN ~)
    # The API's requests.
    "MAX_CONTENT_LENGTH": 100 * 1024 * 1024,  # bytes per request; a Kaggle test.csv is ~50 MB
    "DIGITS_MAX_IMAGES": 10_000,  # images per JSON request
    "DIGITS_MAX_ROWS": 100_000,  # rows per CSV upload
    "DIGITS_CHUNK_ROWS": 1_000,  # rows per batch job (measured: 1,000 to 2,000 are fastest)
    "DIGITS_WAIT": 5.0,  # seconds POST /v1/predict waits when ?wait= is absent
    "DIGITS_MAX_WAIT": 60.0,  # largest ?wait= accepted
    "DIGITS_RESULT_TTL": 3_600,  # seconds a job's pixels and result are kept
    "DIGITS_BATCH_TTL": 86_400,  # seconds a batch's data and labels are kept
    "DIGITS_JOB_RECORD_TTL": 60,  # seconds RQ keeps its ~6 KB record of a finished job
    "DIGITS_JOB_TIMEOUT": 120,  # seconds a worker may spend on one job
    "DIGITS_MAX_QUEUE": 1_000,  # jobs on a queue past which new work gets 429 (0: no bound)
    "DIGITS_SYNC_QUEUE_TTL": 90,  # seconds a /v1/predict job may wait for a worker, then dropped
    "DIGITS_BATCH_WINDOW_MS": 2.0,  # most a sync predict waits for company (api/microbatch.py)
    "DIGITS_MAX_BATCH": 64,  # images per micro-batched job; 1 turns micro-batching off
    "DIGITS_API_KEYS": "",  # comma-separated keys /v1 requires (api/auth.py); empty: open
    "DIGITS_ADMIN_KEYS": "",  # comma-separated keys that may also switch the model
    "DIGITS_RATE_LIMIT": "",  # requests per key or client address, e.g. 100/s; empty: off
    # Redis connections per API process: each open request may hold one (a blocking read, a
    # stream follower), and gevent serves up to 1,000 at once; redis-py's default is 100.
    "DIGITS_REDIS_CONNECTIONS": 2_000,
    "DIGITS_STREAM_WAIT": 30.0,  # idle seconds after which GET /v1/streams/NAME/out ends
    "DIGITS_STREAM_MAX_WAIT": 3_600.0,  # largest ?wait= of GET /v1/streams/NAME/out
    "DIGITS_LIVE_IDLE": 300.0,  # seconds a /v1/predict/live connection may go without a drawing
    # The API's server (`digits api`, `digits up`).
    "DIGITS_HOST": "127.0.0.1",
    "PORT": 8000,
    "DIGITS_API_PROCESSES": 2,  # gunicorn processes (digits bench gunicorn)
    "DIGITS_API_THREADS": 16,  # threads per process under gthread; each waiting request holds one
    "DIGITS_API_WORKER_CLASS": "gevent",  # gevent holds slow clients cheaply; gthread, sync
    "DIGITS_API_KEEPALIVE": 2,  # seconds an idle connection is kept (under gevent: a head's time)
    # Workers.
    "DIGITS_BLAS_THREADS": 1,  # per worker: run one worker per core instead
    "DIGITS_WORKER_TTL": 30,  # RQ keeps a silent worker's key this + 60 s (a plain `rq worker`)
    "DIGITS_SWEEP_INTERVAL": 2.0,  # seconds between sweeps for dead workers' jobs, all workers
    "DIGITS_MAX_RECOVERIES": 2,  # re-runs of a job whose worker died, before it fails
}

FALSE = {"", "0", "false", "no", "off"}


class SettingError(ValueError):
    """An environment variable's value is not of its setting's type."""


def load(overrides: Mapping[str, Any] | None = None) -> Settings:
    """Return DEFAULTS updated from the environment (typed like the default), then overrides.

    Raises SettingError naming the variable when its value is not of its default's type.
    """
    settings = dict(DEFAULTS)
    for name, default in DEFAULTS.items():
        if name in os.environ:
            settings[name] = _parse(name, os.environ[name], default)
    settings.update(overrides or {})
    return settings


def _parse(name: str, raw: str, default: Any) -> Any:
    if isinstance(default, bool):
        return raw.strip().lower() not in FALSE
    try:
        return type(default)(raw)
    except ValueError:
        raise SettingError(
            f"environment variable {name}={raw!r} is not a {type(default).__name__}"
        ) from None

"""Redis key names: every key the service writes is built here, under one prefix."""

from __future__ import annotations

PREFIX = "digits:"

# RQ queues. Single requests go first so a long CSV batch never starves an interactive caller.
PREDICT_QUEUE = "digits-predict"
BATCH_QUEUE = "digits-batch"

# Model registry: persistent, no TTL.
MODELS_META = PREFIX + "models:meta"  # hash version -> JSON record
MODELS_CURRENT = PREFIX + "models:current"  # string: the version workers must use
MODELS_REFUSED = PREFIX + "models:refused"  # hash version -> JSON: why a worker would not load it

# Worker liveness (worker.recovery).
WORKER_BEATS = PREFIX + "workers:beats"  # sorted set: worker name -> Redis time of its last beat
RECOVERY_LOCK = PREFIX + "workers:sweep"  # string held by the worker sweeping for dead ones


def model_weights(version: str) -> str:
    """Key of a published weights file (bytes)."""
    return f"{PREFIX}models:weights:{version}"


def job_pixels(job_id: str) -> str:
    """Key of a job's input: raw uint8 pixels, 784 bytes per image."""
    return f"{PREFIX}job:{job_id}:pixels"


def job_result(job_id: str) -> str:
    """Key of a job's result hash: labels, probabilities, model_version or error."""
    return f"{PREFIX}job:{job_id}:result"


def api_inbox(name: str) -> str:
    """Key of the list an API process reads its waiting callers' answers from (store.inbox)."""
    return f"{PREFIX}inbox:{name}"


def job_orphaned(job_id: str) -> str:
    """Key marking when a sweep first found the job claimed by no live worker (worker.recovery)."""
    return f"{PREFIX}job:{job_id}:orphaned"


def job_group(job_id: str) -> str:
    """Key naming the micro-batch group (its job's id) a sync request joined (store.groups)."""
    return f"{PREFIX}job:{job_id}:group"


def group_open(group_id: str) -> str:
    """Key that exists while a micro-batch group waits for a worker and takes new members."""
    return f"{PREFIX}group:{group_id}:open"


def group_members(group_id: str) -> str:
    """Key of a group's member list: "job_id:images" per request, in pixel order."""
    return f"{PREFIX}group:{group_id}:members"


def batch(batch_id: str) -> str:
    """Key of a batch record (hash)."""
    return f"{PREFIX}batch:{batch_id}"


def batch_pixels(batch_id: str, chunk: int) -> str:
    """Key of one chunk of a batch's input pixels."""
    return f"{PREFIX}batch:{batch_id}:pixels:{chunk}"


def batch_truth(batch_id: str, chunk: int) -> str:
    """Key of one chunk of the labels given in the upload (uint8), when there were any."""
    return f"{PREFIX}batch:{batch_id}:truth:{chunk}"


def batch_labels(batch_id: str, chunk: int) -> str:
    """Key of one chunk of predicted labels (uint8)."""
    return f"{PREFIX}batch:{batch_id}:labels:{chunk}"


def batch_image_ids(batch_id: str) -> str:
    """Key of a batch's ImageIds (int64), when the upload had an ImageId column."""
    return f"{PREFIX}batch:{batch_id}:image_ids"


def batch_confidence(batch_id: str, chunk: int) -> str:
    """Key of one chunk's confidences (float32) followed by its uncertain flags (uint8)."""
    return f"{PREFIX}batch:{batch_id}:confidence:{chunk}"


def batch_done(batch_id: str) -> str:
    """Key of the set of chunk numbers already counted, so a re-run chunk counts once."""
    return f"{PREFIX}batch:{batch_id}:done"


def batch_versions(batch_id: str) -> str:
    """Key of the set of model versions that labelled the batch."""
    return f"{PREFIX}batch:{batch_id}:versions"


# Observability: cumulative, no TTL (like the registry), a few hundred fields at most.
METRICS_JOBS = PREFIX + "metrics:jobs"  # hash: per-queue job counters and histogram buckets
METRICS_RESTARTS = PREFIX + "metrics:restarts"  # hash: role -> processes a supervisor restarted


def rate_limit(identity: str) -> str:
    """Key of the request budget of an API key id or a client address (expires when full)."""
    return f"{PREFIX}ratelimit:{identity}"


# Streams (store.streams): persistent like the registry, each bounded by MAXLEN instead of a TTL.
STREAMS = PREFIX + "streams"  # hash: stream name -> JSON settings of a stream made over HTTP


def stream_in(name: str) -> str:
    """Key of a stream's inputs: producers XADD here, workers read it through a consumer group."""
    return f"{PREFIX}stream:{name}:in"


def stream_out(name: str) -> str:
    """Key of a stream's answers: one entry per input, trimmed with MAXLEN ~."""
    return f"{PREFIX}stream:{name}:out"


def stream_dead(name: str) -> str:
    """Key of a stream's dead letters: inputs delivered too often without an answer."""
    return f"{PREFIX}stream:{name}:dead"

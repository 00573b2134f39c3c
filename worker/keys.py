"""Redis key names: every key the service writes is built here, under one prefix."""

from __future__ import annotations

PREFIX = "digits:"

# RQ queues. Single requests go first so a long CSV batch never starves an interactive caller.
PREDICT_QUEUE = "digits-predict"
BATCH_QUEUE = "digits-batch"

# Model registry: persistent, no TTL.
MODELS_META = PREFIX + "models:meta"  # hash version -> JSON record
MODELS_CURRENT = PREFIX + "models:current"  # string: the version workers must use


def model_weights(version: str) -> str:
    """Key of a published weights file (bytes)."""
    return f"{PREFIX}models:weights:{version}"


def job_pixels(job_id: str) -> str:
    """Key of a job's input: raw uint8 pixels, 784 bytes per image."""
    return f"{PREFIX}job:{job_id}:pixels"


def job_result(job_id: str) -> str:
    """Key of a job's result hash: labels, probabilities, model_version or error."""
    return f"{PREFIX}job:{job_id}:result"


def job_notify(job_id: str) -> str:
    """Key of the list a worker pushes to when the job ends, for a blocking read."""
    return f"{PREFIX}job:{job_id}:notify"


def job_group(job_id: str) -> str:
    """Key naming the RQ job that carries a micro-batched request (its first member's id)."""
    return f"{PREFIX}job:{job_id}:group"


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


def batch_done(batch_id: str) -> str:
    """Key of the set of chunk numbers already counted, so a re-run chunk counts once."""
    return f"{PREFIX}batch:{batch_id}:done"


def batch_versions(batch_id: str) -> str:
    """Key of the set of model versions that labelled the batch."""
    return f"{PREFIX}batch:{batch_id}:versions"

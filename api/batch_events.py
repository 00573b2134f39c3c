"""A batch's progress as Server-Sent Events: `progress`, one `chunk` per chunk, then the end.

The generator polls the batch record (every POLL seconds) rather than being told: a batch's
chunks are counted by workers on any machine, and a poll costs three cheap reads. Chunk
events go out in upload order, chunk 0 first, each once all chunks before it are done, so
an event's id (how many chunks were sent) is all a client needs to resume: `Last-Event-ID`
3 means chunks 0-2 arrived. A `progress` event follows every change of `rows_done`; the
stream ends with `finished` (`rows`, `uncertain_rows`, `model_versions`, and `accuracy` when
the upload had labels) or `failed`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import orjson
from flask import Response
from redis import Redis

from store import batches

POLL = 0.2  # seconds between looks at the batch
HEARTBEAT = 15.0  # seconds between comments on a quiet batch


def response(connection: Redis, batch: batches.Batch, sent: int) -> Response:
    """Return the SSE response for `batch`, chunk events from chunk `sent` on."""
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return Response(_events(connection, batch, sent), mimetype="text/event-stream", headers=headers)


def _events(connection: Redis, batch: batches.Batch, sent: int) -> Iterator[bytes]:
    image_ids = batches.read_image_ids(connection, batch)
    progress, last_write = -1, time.monotonic()
    yield b": following\n\n"
    while True:
        if batch.rows_done != progress:
            progress = batch.rows_done
            yield _event("progress", sent, {"rows_done": batch.rows_done, "rows": batch.rows})
        done = batches.done_chunks(connection, batch.batch_id)
        while sent in done:
            labels = batches.chunk_labels(connection, batch.batch_id, sent)
            first = int(image_ids[sent * batch.chunk_rows])
            sent += 1
            yield _event(
                "chunk",
                sent,
                {"chunk": sent - 1, "first_image_id": first, "labels": labels.tolist()},
            )
            last_write = time.monotonic()
        if batch.status in {"finished", "failed"} and (
            sent >= batch.chunks or batch.status == "failed"
        ):
            yield _event(batch.status, sent, _end(batch))
            return
        if time.monotonic() - last_write >= HEARTBEAT:
            yield b": heartbeat\n\n"
            last_write = time.monotonic()
        time.sleep(POLL)
        found = batches.read(connection, batch.batch_id)
        if found is None:
            yield _event("failed", sent, {"error": f"batch {batch.batch_id} has expired"})
            return
        batch = found


def _end(batch: batches.Batch) -> dict[str, Any]:
    if batch.status == "failed":
        return {"error": batch.error}
    body: dict[str, Any] = {
        "rows": batch.rows,
        "uncertain_rows": batch.uncertain_rows,
        "model_versions": batch.model_versions,
    }
    if batch.has_labels:
        body["accuracy"] = batch.correct / batch.rows_done if batch.rows_done else None
    return body


def _event(name: str, event_id: int, data: dict[str, Any]) -> bytes:
    return f"id: {event_id}\nevent: {name}\ndata: ".encode() + orjson.dumps(data) + b"\n\n"

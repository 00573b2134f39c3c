"""GET /v1/batches/<id>/events: progress, one chunk event per chunk in order, then the end."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from flask.testing import FlaskClient
from redis import Redis

from formats.kaggle_csv import PIXEL_NAMES
from store import batches


def kaggle_csv(pixels: np.ndarray, labels: np.ndarray) -> bytes:
    rows = [",".join(["label", *PIXEL_NAMES])]
    rows += [
        ",".join(map(str, [label, *row]))
        for label, row in zip(labels, pixels.tolist(), strict=True)
    ]
    return "\n".join(rows).encode() + b"\n"


def events(body: bytes) -> list[tuple[str, str, dict]]:
    found = []
    for block in body.decode().split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if not line.startswith(":")
        )
        if "event" in fields:
            found.append((fields["id"], fields["event"], json.loads(fields["data"])))
    return found


def upload(client: FlaskClient, pixels: np.ndarray, truth: np.ndarray) -> str:
    created = client.post("/v1/batches", data=kaggle_csv(pixels, truth), content_type="text/csv")
    assert created.status_code == 202 and created.json["chunks"] == 3  # 40 rows per chunk
    return created.json["batch_id"]


def test_events_follow_a_batch_as_it_runs(
    client: FlaskClient, service, published: dict, pixels: np.ndarray
) -> None:
    truth = np.arange(len(pixels)) % 10
    batch_id = upload(client, pixels, truth)
    with ThreadPoolExecutor(1) as pool:
        following = pool.submit(client.get, f"/v1/batches/{batch_id}/events")
        time.sleep(0.5)  # the client follows a queued batch, then a worker runs it
        service.work()
        response = following.result(timeout=30)
    assert response.mimetype == "text/event-stream"
    found = events(response.data)
    assert found[0] == ("0", "progress", {"rows_done": 0, "rows": 100})
    chunks = [data for _, name, data in found if name == "chunk"]
    assert [c["first_image_id"] for c in chunks] == [1, 41, 81]
    expected = service.labels("a", pixels)
    assert [label for c in chunks for label in c["labels"]] == expected
    progress = [data["rows_done"] for _, name, data in found if name == "progress"]
    assert progress[-1] == 100 and progress == sorted(progress)
    last_id, name, data = found[-1]
    assert (last_id, name) == ("3", "finished")
    assert data["accuracy"] == np.mean(np.asarray(expected) == truth)
    status = client.get(f"/v1/batches/{batch_id}").json
    assert data["uncertain_rows"] == status["uncertain_rows"] and data["rows"] == 100


def test_events_resume_after_the_last_chunk_received(
    client: FlaskClient, service, published: dict, pixels: np.ndarray
) -> None:
    batch_id = upload(client, pixels, np.zeros(len(pixels), dtype=int))
    service.work()
    resumed = events(
        client.get(f"/v1/batches/{batch_id}/events", headers={"Last-Event-ID": "2"}).data
    )
    assert [(i, name) for i, name, _ in resumed] == [
        ("2", "progress"),
        ("3", "chunk"),
        ("3", "finished"),
    ]
    assert resumed[1][2]["first_image_id"] == 81
    bad = client.get(f"/v1/batches/{batch_id}/events", headers={"Last-Event-ID": "x"})
    assert bad.status_code == 400


def test_a_failed_batch_ends_with_failed(
    client: FlaskClient, redis_conn: Redis, published: dict, pixels: np.ndarray
) -> None:
    batch_id = upload(client, pixels, np.zeros(len(pixels), dtype=int))
    batches.mark_failed(redis_conn, batch_id, "ValueError: broken")
    found = events(client.get(f"/v1/batches/{batch_id}/events").data)
    assert found[-1][1:] == ("failed", {"error": "ValueError: broken"})
    assert client.get("/v1/batches/" + "0" * 32 + "/events").status_code in {404, 410}

"""Streams: one answer per input, written once, acknowledged after; dead letters; bad entries."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from flask.testing import FlaskClient
from processes import wait_for, workers
from redis import Redis
from test_preprocess import encode, handwritten, redraw

import pictures.preprocess
from config import settings
from model import data
from pictures.preprocess import preprocess
from store import keys, streams
from worker import runner
from worker import streams as consumer
from worker.streams import Consumer, Settings


def add_all(redis_conn: Redis, name: str, pixels: np.ndarray) -> list[str]:
    """XADD one entry per image, with `id` img-<n>; return the entry ids."""
    pipe = redis_conn.pipeline()
    for n, row in enumerate(pixels):
        streams.add(pipe, name, {"pixels": row.tobytes(), "id": f"img-{n}"})
    return [entry_id.decode() for entry_id in pipe.execute()]


def outputs(redis_conn: Redis, name: str) -> list[dict]:
    return [streams.decode_answer(fields) for _, fields in redis_conn.xrange(keys.stream_out(name))]


def test_create_is_idempotent_and_names_are_checked(redis_conn: Redis) -> None:
    assert streams.create(redis_conn, "scanner-1") is True
    assert streams.create(redis_conn, "scanner-1") is False
    assert streams.exists(redis_conn, "scanner-1", [])
    assert streams.exists(redis_conn, "listed", ["listed"])
    assert not streams.exists(redis_conn, "other", ["listed"])
    for bad in ("", "a b", "a:b", "x" * 101, "é"):
        with pytest.raises(streams.StreamNameError, match="letters, digits"):
            streams.check_name(bad)


def test_every_input_gets_one_answer_and_is_deleted(
    redis_conn: Redis, service, published: dict, pixels: np.ndarray
) -> None:
    streams.create(redis_conn, "s")
    in_ids = add_all(redis_conn, "s", pixels)
    assert consumer.drain(redis_conn, "w1", Settings()) == len(pixels)

    answers = outputs(redis_conn, "s")
    assert [a["in_id"] for a in answers] == in_ids
    assert [a["id"] for a in answers] == [f"img-{n}" for n in range(len(pixels))]
    assert [a["label"] for a in answers] == service.labels("a", pixels)
    assert {a["model_version"] for a in answers} == {published["a"]}
    assert all(a["uncertain"] is True for a in answers)  # uniform noise is not one digit
    for answer in answers:
        assert len(answer["probabilities"]) == 10
        # 6 significant digits each (float32 carries ~7), so the sum is 1 within 10 * 5e-7.
        assert sum(answer["probabilities"]) == pytest.approx(1, abs=1e-5)
        assert answer["confidence"] == max(answer["probabilities"])
    assert redis_conn.xlen(keys.stream_in("s")) == 0
    assert redis_conn.xpending(keys.stream_in("s"), streams.GROUP)["pending"] == 0


def test_a_malformed_entry_gets_an_error_answer(
    redis_conn: Redis, published: dict, pixels: np.ndarray
) -> None:
    streams.create(redis_conn, "s")
    redis_conn.xadd(keys.stream_in("s"), {"pixels": b"\x00" * 783, "id": "short"})
    redis_conn.xadd(keys.stream_in("s"), {"pixel": pixels[0].tobytes()})
    redis_conn.xadd(keys.stream_in("s"), {"pixels": pixels[0].tobytes()})
    redis_conn.xadd(keys.stream_in("s"), {"image": b"\x89PNG\r\n"})
    consumer.drain(redis_conn, "w1", Settings())

    short, unnamed, good, picture = outputs(redis_conn, "s")
    assert picture["error"] == "field 'image': the image is not a PNG, JPEG, GIF, BMP or WebP image"
    assert short["id"] == "short" and "783 bytes, expected 784" in short["error"]
    assert "label" not in short
    assert "no field 'pixels'" in unnamed["error"] and "nor 'image'" in unnamed["error"]
    assert "id" not in unnamed
    assert good["label"] in range(10) and "error" not in good


def test_an_input_that_ran_twice_is_answered_once(
    redis_conn: Redis, published: dict, pixels: np.ndarray
) -> None:
    streams.create(redis_conn, "s")
    add_all(redis_conn, "s", pixels[:5])
    slow = Consumer(redis_conn, "slow", Settings())
    taken = streams.read(redis_conn, "slow", ["s"], 10, None)
    slow.maxlens = {"s": streams.DEFAULT_MAXLEN}
    # The slow consumer is taken for dead: another reclaims its entries and answers them.
    again = streams.reclaim(redis_conn, "s", "fast", 10, idle_ms=0)
    assert [e.entry_id for e in again] == [e.entry_id for e in taken]
    assert {e.deliveries for e in again} == {2}
    fast = Consumer(redis_conn, "fast", Settings())
    fast.maxlens = {"s": streams.DEFAULT_MAXLEN}
    assert fast.answer(again[:3]) == 3
    assert slow.answer(taken) == 2  # the slow one finishes too: only the two left are new
    assert fast.answer(again[3:]) == 0
    assert sorted(a["in_id"] for a in outputs(redis_conn, "s")) == sorted(e.entry_id for e in taken)


def test_an_entry_delivered_too_often_becomes_a_dead_letter(
    redis_conn: Redis, published: dict, pixels: np.ndarray
) -> None:
    streams.create(redis_conn, "s")
    (poison,) = add_all(redis_conn, "s", pixels[:1])
    streams.read(redis_conn, "dies-1", ["s"], 10, None)
    for n in range(2, streams.MAX_DELIVERIES + 1):  # each taker dies before it answers
        streams.reclaim(redis_conn, "s", f"dies-{n}", 10, idle_ms=0)
    last = Consumer(redis_conn, "last", Settings())
    last.reclaim_idle_ms = 0
    assert last.step(block_ms=None) == 1

    (answer,) = outputs(redis_conn, "s")
    assert answer["in_id"] == poison and answer["id"] == "img-0"
    assert f"no answer after {streams.MAX_DELIVERIES} deliveries" in answer["error"]
    ((_, dead),) = redis_conn.xrange(keys.stream_dead("s"))
    assert dead[b"in_id"].decode() == poison and dead[b"pixels"] == pixels[0].tobytes()
    assert b"deliveries" in dead[b"reason"]
    assert redis_conn.xlen(keys.stream_in("s")) == 0


def test_answers_are_trimmed_to_the_streams_maxlen(
    redis_conn: Redis, published: dict, pixels: np.ndarray
) -> None:
    streams.create(redis_conn, "small", maxlen=10)
    for _ in range(5):
        add_all(redis_conn, "small", pixels)
    consumer.drain(redis_conn, "w1", Settings())
    # MAXLEN ~ trims whole macro-nodes (100 entries by default), never below 10.
    assert 10 <= redis_conn.xlen(keys.stream_out("small")) <= 110


def test_streams_listed_in_the_environment_need_no_creation(
    redis_conn: Redis, published: dict, pixels: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGITS_STREAMS", "forms, camera")
    monkeypatch.setenv("DIGITS_STREAM_MAXLEN", "50")
    assert Settings.from_config() == Settings(("forms", "camera"), 50)
    add_all(redis_conn, "camera", pixels[:3])  # before any worker made its group
    consumer.drain(redis_conn, "w1")  # its settings: config.settings.load()
    consumer.drain(redis_conn, "w1")
    assert len(outputs(redis_conn, "camera")) == 3
    assert json.loads(json.dumps(outputs(redis_conn, "camera")))[0]["label"] in range(10)


def test_stream_settings_come_from_the_one_configuration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DIGITS_STREAMS", "forms")
    monkeypatch.setenv("DIGITS_STREAM_MAXLEN", "50")
    overridden = settings.load({"DIGITS_STREAMS": "camera", "DIGITS_STREAM_MAXLEN": 7})
    assert Settings.from_config(overridden) == Settings(("camera",), 7)  # overrides come last
    monkeypatch.delenv("DIGITS_STREAMS")
    monkeypatch.delenv("DIGITS_STREAM_MAXLEN")
    assert Settings.from_config() == Settings((), streams.DEFAULT_MAXLEN)
    monkeypatch.setenv("DIGITS_STREAM_MAXLEN", "many")
    with pytest.raises(settings.SettingError, match="DIGITS_STREAM_MAXLEN='many'"):
        Settings.from_config()


def test_a_worker_consumes_with_the_settings_it_was_given(
    redis_conn: Redis, published: dict, pixels: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(consumer, "BLOCK_MS", 50)
    config = settings.load({"DIGITS_STREAMS": "given"})
    add_all(redis_conn, "given", pixels[:2])
    with runner._streams(redis_conn, "w1", False, config):
        wait_for(lambda: len(outputs(redis_conn, "given")) == 2, 20, "two answers")
    assert [answer["id"] for answer in outputs(redis_conn, "given")] == ["img-0", "img-1"]


def test_streams_wait_while_interactive_jobs_are_queued(
    redis_conn: Redis, published: dict, pixels: np.ndarray
) -> None:
    streams.create(redis_conn, "s")
    add_all(redis_conn, "s", pixels[:3])
    reader = Consumer(redis_conn, "w1", Settings())
    redis_conn.rpush(consumer.PREDICT_QUEUE_KEY, "a-queued-predict-job")
    assert reader.step(block_ms=None) == 0
    assert redis_conn.xlen(keys.stream_out("s")) == 0
    redis_conn.delete(consumer.PREDICT_QUEUE_KEY)
    assert reader.step(block_ms=None) == 3
    assert redis_conn.xlen(keys.stream_out("s")) == 3


# Pictures (`image`) instead of pixels


@pytest.fixture(scope="module")
def photos() -> dict[str, bytes]:
    """Two MNIST test digits drawn dark on white paper, as a PNG and as a JPEG."""
    x_test = data.load_mnist()[2]
    rng = np.random.default_rng(3)
    return {
        "png": encode(redraw(x_test[4].reshape(28, 28), rng)),
        "jpeg": handwritten(x_test[7].reshape(28, 28), rng),
    }


def test_pictures_are_read_as_post_v1_predict_image_reads_them_by_a_real_worker(
    redis_conn: Redis,
    redis_url: str,
    client: FlaskClient,
    service,
    published: dict,
    photos: dict[str, bytes],
    tmp_path: Path,
) -> None:
    streams.create(redis_conn, "camera")
    sent = photos | {
        "blank": encode(np.full((120, 90), 255, np.uint8)),
        "garbage": b"GIF89a but not really",
        "truncated": photos["jpeg"][: len(photos["jpeg"]) // 2],
        "empty": b"",
    }
    for name, picture in sent.items():
        redis_conn.xadd(keys.stream_in("camera"), {"image": picture, "id": name})
    redis_conn.xadd(keys.stream_in("camera"), {"image": photos["png"], "pixels": bytes(784)})
    with workers(redis_url, 1, tmp_path):
        wait_for(lambda: redis_conn.xlen(keys.stream_out("camera")) == 7, 60, "seven answers")
        by_endpoint = {
            name: client.post("/v1/predict/image", data=sent[name], content_type="image/png").json
            for name in photos
        }
    answers = outputs(redis_conn, "camera")
    found = {answer.get("id"): answer for answer in answers}
    for name, picture in photos.items():
        seen = preprocess(picture)
        assert found[name]["label"] == service.labels("a", seen.pixels.reshape(1, 784))[0]
        assert found[name]["box"] == seen.box
        assert found[name]["model_version"] == published["a"]
        endpoint = by_endpoint[name]
        assert (found[name]["label"], found[name]["box"]) == (
            endpoint["labels"][0],
            endpoint["box"],
        )
        assert found[name]["probabilities"] == pytest.approx(endpoint["probabilities"][0], abs=1e-5)
    assert found["blank"]["error"] == "field 'image': the image is blank: no digit found"
    assert "not a PNG, JPEG" in found["garbage"]["error"]
    assert "damaged or truncated" in found["truncated"]["error"]
    assert "the upload is empty" in found["empty"]["error"]
    assert "both 'pixels' and 'image'" in found[None]["error"]
    assert all("label" not in found[name] for name in ("blank", "garbage", "truncated", "empty"))
    assert redis_conn.xlen(keys.stream_in("camera")) == 0


def test_entries_read_slowly_are_not_reclaimed_meanwhile(
    redis_conn: Redis, published: dict, photos: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Photos take time: the consumer reading them keeps them from the other workers."""
    streams.create(redis_conn, "s")
    for n in range(6):
        redis_conn.xadd(keys.stream_in("s"), {"image": photos["png"], "id": f"p{n}"})
    monkeypatch.setattr(consumer, "TOUCH_INTERVAL", 0.1)
    monkeypatch.setattr(
        pictures.preprocess, "preprocess", lambda data: time.sleep(0.3) or preprocess(data)
    )
    slow = Consumer(redis_conn, "slow", Settings())
    slow.maxlens = {"s": streams.DEFAULT_MAXLEN}
    taken = streams.read(redis_conn, "slow", ["s"], 10, None)
    worker = threading.Thread(target=slow.answer, args=(taken,))
    worker.start()
    time.sleep(1.2)  # four photos read, two to go; all taken 1.2 s ago
    assert streams.reclaim(redis_conn, "s", "other", 10, idle_ms=700) == []
    pending = redis_conn.xpending_range(keys.stream_in("s"), streams.GROUP, "-", "+", 10)
    assert pending and {entry["times_delivered"] for entry in pending} == {1}
    worker.join(timeout=10)
    assert [answer["id"] for answer in outputs(redis_conn, "s")] == [f"p{n}" for n in range(6)]

"""`digits bench stream`: a stream against the same images as one CSV batch; stream latency.

    digits bench stream [--images 100000] [--rates 200,1000] [--seconds 30]

One private service with two workers (`digits up --workers 2`, the shipped CNN). Throughput:
the images are XADDed to a stream as fast as one producer can (pipelines of 1,000), timed
from the first XADD to the last answer, against the same images as one Kaggle CSV through
`digits submit` (upload, parse, chunks, submission.csv), in turns. Latency: a producer process adds
entries at a steady rate (every few ms, one pipeline of all the entries due by then against
the monotonic clock) and a consumer XREADs the answers; the latency of an input is from just
before its XADD to the moment its answer is read.
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from redis import Redis

from scripts.bench.batch import kaggle_test_csv, mnist_images
from scripts.bench.report import load_average, median, write_section
from scripts.bench.scaling import timed_submit
from scripts.bench.stack import stack
from store import codec, keys, streams
from store.connection import connect

TICK = 0.004  # shortest pause between the steady producer's pipelines, seconds
MAX_TICK = 2_000  # most entries one steady pipeline adds (catching up)
PIPELINE = 1_000  # entries per XADD pipeline when adding as fast as possible


def register(subparsers: Any) -> None:
    """Add `digits bench stream`."""
    parser = subparsers.add_parser("stream", help="stream vs CSV batch; XADD-to-answer latency")
    parser.add_argument("--images", type=int, default=100_000, help="images for throughput")
    parser.add_argument("--rates", default="200,1000", help="steady rates, images/s")
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds per steady rate")
    parser.add_argument("--runs", type=int, default=1, help="throughput runs per path")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Measure and write the `stream` section of BENCHMARKS.md."""
    images = mnist_images(args.images)
    rates = [int(rate) for rate in args.rates.split(",")]
    speeds: dict[str, list[float]] = {"stream": [], "batch": [], "batch_workers": []}
    with tempfile.TemporaryDirectory() as scratch, stack(2) as service:
        csv = kaggle_test_csv(Path(scratch) / "test.csv", args.images)
        redis = connect(service.redis_url)
        for turn in range(args.runs):
            speeds["stream"].append(stream_rate(redis, f"bench-{turn}", images))
            end_to_end, workers = timed_submit(csv, Path(scratch) / "out.csv", service.url)
            speeds["batch"].append(end_to_end)
            speeds["batch_workers"].append(workers)
        latencies = {
            rate: steady(redis, f"steady-{rate}", images, rate, args.seconds) for rate in rates
        }
    write_section(
        "stream", "Streams: throughput vs a CSV batch, latency", table(args, speeds, latencies)
    )
    return 0


def stream_rate(redis: Redis, name: str, images: NDArray[np.uint8]) -> float:
    """Add every image as fast as possible; return images/s from first XADD to last answer."""
    streams.create(redis, name, maxlen=len(images))
    started = time.perf_counter()
    for start in range(0, len(images), PIPELINE):
        _add(redis, name, images[start : start + PIPELINE], start)
    while redis.xlen(keys.stream_out(name)) < len(images):
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    redis.delete(keys.stream_out(name))
    return len(images) / elapsed


def steady(
    redis: Redis, name: str, images: NDArray[np.uint8], rate: int, seconds: float
) -> dict[str, float]:
    """Add `rate` images/s for `seconds`; return latency percentiles (ms) and what was kept up."""
    streams.create(redis, name, maxlen=int(rate * seconds) + 1_000)
    total = int(rate * seconds)
    answered_at = np.zeros(total)
    reader = threading.Thread(target=_read, args=(redis, name, answered_at), daemon=True)
    reader.start()
    with producing(redis, name, images, rate, seconds) as (sent_at, sent_per_s):
        reader.join(timeout=seconds + 120)
    latency_ms = (answered_at - sent_at) * 1000
    done = answered_at > 0
    return {
        "p50": float(np.percentile(latency_ms[done], 50)),
        "p99": float(np.percentile(latency_ms[done], 99)),
        "answered": float(done.mean()),
        "sent_per_s": sent_per_s.value,
    }


@contextmanager
def producing(
    redis: Redis, name: str, images: NDArray[np.uint8], rate: int, seconds: float
) -> Iterator[tuple[NDArray[np.float64], Any]]:
    """Run a steady producer in its own process while in the block.

    Yields the send time of each entry (time.perf_counter() seconds, filled in as they go;
    entry i has `id` str(i) and image i % len(images)) and, once the producer is done, the rate
    it actually kept (images/s). Its own process: the answers' reader and the producer share no
    interpreter lock.
    """
    total = int(rate * seconds)
    context = multiprocessing.get_context("fork")
    shared = context.RawArray("d", total)
    sent_per_s = context.RawValue("d", 0.0)
    # Forked: redis-py's pool notices the new process and opens its own connections.
    process = context.Process(
        target=_produce, args=(redis, name, images, rate, shared, sent_per_s), daemon=True
    )
    process.start()
    try:
        yield np.frombuffer(shared, dtype=np.float64), sent_per_s
    finally:
        process.join(timeout=seconds + 60)
        if process.is_alive():
            process.kill()
    if process.exitcode != 0:
        raise SystemExit(f"the steady producer failed (exit code {process.exitcode})")


def _produce(
    redis: Redis,
    name: str,
    images: NDArray[np.uint8],
    rate: int,
    shared: Any,
    sent_per_s: Any,
) -> None:
    # Each tick adds every entry due by now against the monotonic clock, so a slow tick is
    # made up by a larger pipeline at the next one instead of slowing the rate down.
    sent_at = np.frombuffer(shared, dtype=np.float64)
    total, sent = len(sent_at), 0
    started = time.perf_counter()
    while sent < total:
        due = min(total, int((time.perf_counter() - started) * rate) + 1)
        due = min(due, sent + MAX_TICK)
        sent_at[sent:due] = time.perf_counter()
        _add(redis, name, images[np.arange(sent, due) % len(images)], sent)
        sent = due
        time.sleep(max(0.0, started + sent / rate - time.perf_counter(), TICK))
    sent_per_s.value = total / (time.perf_counter() - started)


def _add(redis: Redis, name: str, images: NDArray[np.uint8], first: int) -> None:
    pipe = redis.pipeline(transaction=False)
    for offset, row in enumerate(images):
        streams.add(pipe, name, {"pixels": row.tobytes(), "id": str(first + offset)})
    pipe.execute()


def _read(redis: Redis, name: str, answered_at: NDArray[np.float64]) -> None:
    after, count, deadline = "0-0", 0, time.monotonic() + 600
    while count < len(answered_at) and time.monotonic() < deadline:
        reply: Any = redis.xread({keys.stream_out(name): after}, count=1_000, block=1_000)
        now = time.perf_counter()
        for _, entries in reply or []:
            for entry_id, fields in entries:
                answered_at[int(codec.text(fields[b"id"]))] = now
                after, count = codec.text(entry_id), count + 1


def table(
    args: argparse.Namespace, speeds: dict[str, list[float]], latencies: dict[int, dict[str, float]]
) -> str:
    """Format throughput against the batch, and latency at each steady rate."""
    stream, batch = median(speeds["stream"]), median(speeds["batch"])
    lines = [
        f"{args.images:,} MNIST images, `digits up --workers 2` on its own redis-server, model: "
        f"cnn, {args.runs} run(s) per path, in turns. Load average at the end: {load_average()} "
        "(the machine is shared: 2 cores serve Redis, the API, both workers and the client).",
        "",
        "| path | images/s | vs the CSV batch |",
        "| --- | --- | --- |",
        f"| stream: XADD (pipelines of {PIPELINE:,}) -> last answer | {stream:,.0f} | "
        f"{stream / batch:.2f}x (target >= 0.9x: {'met' if stream >= 0.9 * batch else 'MISSED'}) |",
        f"| CSV batch: `digits submit`, end to end | {batch:,.0f} | 1.00x |",
        f"| CSV batch: workers only (first chunk started -> finished) | "
        f"{median(speeds['batch_workers']):,.0f} | - |",
        "",
        f"Latency from XADD to the answer read, {args.seconds:g} s at each steady rate:",
        "",
        "| rate, images/s | p50 | p99 | answered | sent, images/s |",
        "| --- | --- | --- | --- | --- |",
    ]
    for rate, found in latencies.items():
        lines.append(
            f"| {rate:,} | {found['p50']:.1f} ms | {found['p99']:.1f} ms | "
            f"{found['answered']:.1%} | {found['sent_per_s']:,.0f} |"
        )
    lines += [
        "",
        "The producer is its own process and adds, every few ms, all the entries due by then "
        "against the monotonic clock: `sent` is the rate it actually kept. Where it is below "
        "the rate, the machine could not keep the pace and the latency is a backlog's.",
    ]
    return "\n".join(lines)

"""`digits bench stream-soak`: a long stream at a steady rate; memory flat, every input answered.

    digits bench stream-soak [--minutes 10] [--rate 200] [--workers 2]

One private service (`digits up --workers 2`, the shipped CNN, its own redis-server) and one
stream created with the default number of answers kept (DIGITS_STREAM_MAXLEN), so the output
is trimmed many times over. The steady producer of `digits bench stream` (its own process)
adds `rate` images/s for `minutes`; a reader XREADs every answer and counts them per input
`id`. Every SAMPLE_SECONDS the RSS of the API (all gunicorn processes), of each worker and of
redis-server, and Redis's `used_memory`, are sampled. Memory is flat when the end is close
to the start and well under what the inputs sent would take.
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

import numpy as np
from numpy.typing import NDArray
from redis import Redis

from scripts.bench.batch import mnist_images
from scripts.bench.report import load_average, write_section
from scripts.bench.stack import Stack, stack
from scripts.bench.stream import producing
from store import codec, keys, streams
from store.connection import connect

SAMPLE_SECONDS = 10.0
DRAIN_SECONDS = 60.0  # longest wait for the last answers after the producer stops
MIB = 2**20


def register(subparsers: Any) -> None:
    """Add `digits bench stream-soak`."""
    parser = subparsers.add_parser("stream-soak", help="long steady stream: memory, answers")
    parser.add_argument("--minutes", type=float, default=10.0, help="minutes of steady input")
    parser.add_argument("--rate", type=int, default=200, help="images/s")
    parser.add_argument("--workers", type=int, default=2, help="workers of the service")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Soak a private service and write the `stream-soak` section of BENCHMARKS.md."""
    seconds = args.minutes * 60
    images = mnist_images(10_000)
    with stack(args.workers) as service:
        redis = connect(service.redis_url)
        name = "soak"
        streams.create(redis, name, maxlen=streams.DEFAULT_MAXLEN)
        samples: list[dict[str, float]] = []
        stop = threading.Event()
        sampler = threading.Thread(target=_sample, args=(service, redis, samples, stop))
        sampler.start()
        answers = np.zeros(int(args.rate * seconds), dtype=np.int64)
        reader = threading.Thread(target=count_answers, args=(redis, name, answers, seconds))
        reader.start()
        with producing(redis, name, images, args.rate, seconds) as (_, sent_per_s):
            reader.join()
        stop.set()
        sampler.join()
        left = {
            "in": redis.xlen(keys.stream_in(name)),
            "pending": redis.xpending(keys.stream_in(name), streams.GROUP)["pending"],
            "dead": redis.xlen(keys.stream_dead(name)),
            "out": redis.xlen(keys.stream_out(name)),
        }
    body = table(args, samples, answers, sent_per_s.value, left)
    write_section("stream-soak", "Streams: a long steady run, memory and answers", body)
    return 0


def count_answers(redis: Redis, name: str, answers: NDArray[np.int64], seconds: float) -> None:
    """XREAD the output stream from its start and count the answers to each input `id`."""
    after, deadline = "0-0", time.monotonic() + seconds + DRAIN_SECONDS
    while not answers.all() and time.monotonic() < deadline:
        reply: Any = redis.xread({keys.stream_out(name): after}, count=1_000, block=1_000)
        for _, entries in reply or []:
            for entry_id, fields in entries:
                answers[int(codec.text(fields[b"id"]))] += 1
                after = codec.text(entry_id)


def _sample(
    service: Stack, redis: Redis, samples: list[dict[str, float]], stop: threading.Event
) -> None:
    started = time.monotonic()
    while True:
        samples.append({"t": time.monotonic() - started} | memory(service, redis))
        if stop.wait(SAMPLE_SECONDS):
            samples.append({"t": time.monotonic() - started} | memory(service, redis))
            return


def memory(service: Stack, redis: Redis) -> dict[str, float]:
    """Return RSS (MiB): `api` (all gunicorn processes), `worker <pid>` each, `redis`; and
    `redis used_memory` (MiB, INFO memory)."""
    import psutil

    found: dict[str, float] = {"api": 0.0}
    for role, processes in service.processes().items():
        for process in processes:
            try:
                rss = process.memory_info().rss / MIB
            except psutil.Error:
                continue
            if role == "worker":
                found[f"worker {process.pid}"] = rss
            else:
                found[role] = found.get(role, 0.0) + rss
    found["redis used_memory"] = int(redis.info("memory")["used_memory"]) / MIB
    return found


def table(
    args: argparse.Namespace,
    samples: list[dict[str, float]],
    answers: NDArray[np.int64],
    sent_per_s: float,
    left: dict[str, int],
) -> str:
    """Format memory per process (start, end, max, growth) and the count of answers."""
    names = [name for name in samples[0] if name != "t"]
    lines = [
        f"`digits up --workers {args.workers}` on its own redis-server, model: cnn; one stream "
        f"kept at {streams.DEFAULT_MAXLEN:,} answers (DIGITS_STREAM_MAXLEN); {args.rate:,} "
        f"images/s for {args.minutes:g} min (sent: {sent_per_s:,.1f}/s); memory sampled every "
        f"{SAMPLE_SECONDS:g} s ({len(samples)} samples). Load average at the end: "
        f"{load_average()} (the machine is shared).",
        "",
        "| process | start, MiB | end, MiB | max, MiB | growth, MiB | growth after the first "
        "minute, MiB |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name in names:
        values = [sample[name] for sample in samples if name in sample]
        warm = [sample[name] for sample in samples if name in sample and sample["t"] >= 60]
        lines.append(
            f"| {name} | {values[0]:.1f} | {values[-1]:.1f} | {max(values):.1f} | "
            f"{values[-1] - values[0]:+.1f} | {values[-1] - warm[0] if warm else 0.0:+.1f} |"
        )
    once, twice = int((answers == 1).sum()), int((answers > 1).sum())
    lines += [
        "",
        f"Inputs: {len(answers):,}; answered exactly once: {once:,}; more than once: {twice:,}; "
        f"never: {int((answers == 0).sum()):,}. Left at the end: {left['in']:,} input entries, "
        f"{left['pending']:,} pending, {left['dead']:,} dead letters, {left['out']:,} answers "
        "kept.",
    ]
    return "\n".join(lines)

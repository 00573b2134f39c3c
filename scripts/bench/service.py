"""`digits bench service`: the queue service against the same work done in one process.

    digits bench service [--rows 10000] [--runs 5] [--workers N] [--requests 200]

Starts a private Redis (a redis-server on a free port, so nothing else on the machine
shares its database), publishes the shipped model, starts `digits up` and measures, in
the same run and interleaved so both see the same machine load:

- CSV: a Kaggle-format test.csv of `--rows` rows through `digits submit` (the command as a
  user runs it, interpreter start included, and the `submit()` call alone), against the
  local pipeline in one process (read CSV, forward pass, write submission.csv);
- latency: single-image `POST /v1/predict`, one client, sequential requests.

Each figure is the median over `--runs` runs; the `service` section of BENCHMARKS.md
gets the table.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

import model
from formats.kaggle_csv import read_kaggle_csv, write_kaggle_csv
from formats.mnist import N_PIXELS
from scripts.bench.report import load_average, median, write_section
from scripts.registry import publish_file
from scripts.submit import submit
from scripts.up import SHIPPED_WEIGHTS, WEIGHTS_DIR
from store.connection import connect

ROOT = Path(__file__).resolve().parents[2]
P50_TARGET, P99_TARGET = 5.0, 15.0  # ms, one client, single image (the service had 10 ms p50)


def register(subparsers: Any) -> None:
    """Add `digits bench service`."""
    parser = subparsers.add_parser("service", help="CSV through the service vs local; latency")
    parser.add_argument("--rows", type=int, default=10_000, help="rows in test.csv")
    parser.add_argument("--runs", type=int, default=5, help="runs per measurement (median)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--requests", type=int, default=200, help="sync requests per run")
    parser.add_argument("--weights", type=Path, help="default: the shipped CNN (else MLP)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Measure, then write the `service` section of BENCHMARKS.md."""
    weights = args.weights or next(
        WEIGHTS_DIR / name for name in SHIPPED_WEIGHTS if (WEIGHTS_DIR / name).is_file()
    )
    network = model.load(weights)
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        csv = work / "test.csv"
        write_kaggle_csv(csv, test_pixels(args.rows))
        with private_redis() as redis_url:
            publish_file(connect(redis_url), weights, activate=True)
            with service(redis_url, args.workers) as url:
                csv_times = measure_csv(csv, work, url, network, args.runs)
                latency = measure_latency(url, args.runs, args.requests)
    body = table(args, network, csv_times, latency)
    write_section("service", "Service: Kaggle CSV through the queue, sync latency", body)
    return 0


def test_pixels(rows: int) -> NDArray[np.uint8]:
    """MNIST test images when the data cache has them (tiled to `rows`), else random ones."""
    cache = ROOT / "data" / "mnist.npz"
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as arrays:
            images = arrays["x_test"]
        return np.resize(images, (rows, N_PIXELS))
    return np.random.default_rng(0).integers(0, 256, (rows, N_PIXELS), dtype=np.uint8)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def private_redis() -> Iterator[str]:
    """Run a redis-server of our own on a free port; yield its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed")
    port = free_port()
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        _wait_for(lambda: _pings(url), "redis-server did not start")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def _pings(url: str) -> bool:
    try:
        return bool(connect(url).ping())
    except Exception:
        return False


def _wait_for(check: Callable[[], bool], message: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(message)
        time.sleep(0.1)


@contextmanager
def service(redis_url: str, workers: int) -> Iterator[str]:
    """Run `digits up` on a free port until the block ends; yield its URL."""
    port = free_port()
    command = [sys.executable, "-m", "scripts.cli", "up", "--workers", str(workers)]
    up = subprocess.Popen(
        [*command, "--port", str(port)],
        cwd=ROOT,
        env=os.environ | {"REDIS_URL": redis_url},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert up.stdout is not None
        line = up.stdout.readline()
        if "serving on" not in line:
            raise SystemExit(f"digits up did not start: {line!r}")
        yield f"http://127.0.0.1:{port}"
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=60)


def local_pipeline(csv: Path, out: Path, network: model.Classifier) -> NDArray[np.int64]:
    """Label a CSV the way one process would: parse, forward, write the submission."""
    pixels, _ = read_kaggle_csv(csv)
    labels = network.predict(pixels)
    lines = "".join(f"{i},{label}\n" for i, label in enumerate(labels.tolist(), start=1))
    out.write_text("ImageId,Label\n" + lines)
    return labels


def measure_csv(
    csv: Path, work: Path, url: str, network: model.Classifier, runs: int
) -> dict[str, list[float]]:
    """Time the three CSV paths, interleaved run by run; check they agree."""
    times: dict[str, list[float]] = {
        "local": [],
        "local_1_thread": [],
        "submit_call": [],
        "submit_command": [],
    }
    local_out, call_out, command_out = work / "local.csv", work / "call.csv", work / "cmd.csv"
    command = [sys.executable, "-m", "scripts.cli", "submit", str(csv), "--quiet"]
    for _ in range(runs):
        times["local"].append(_timed(lambda: local_pipeline(csv, local_out, network)))
        with threadpool_limits(limits=1):
            times["local_1_thread"].append(_timed(lambda: local_pipeline(csv, local_out, network)))
        times["submit_call"].append(_timed(lambda: submit(csv, call_out, url, progress=False)))
        times["submit_command"].append(
            _timed(
                lambda: subprocess.run(
                    [*command, "--out", str(command_out), "--url", url],
                    cwd=ROOT,
                    check=True,
                    stdout=subprocess.DEVNULL,
                )
            )
        )
        expected = local_out.read_text()
        if call_out.read_text() != expected or command_out.read_text() != expected:
            raise SystemExit("the service's submission differs from the local one")
    return times


def measure_latency(url: str, runs: int, count: int) -> list[NDArray[np.float64]]:
    """Per run, the latencies (ms) of `count` sequential single-image sync predictions.

    The client is one keep-alive `http.client` connection that sends each request in one
    write: the figures are the service's, not a client library's (requests adds ~1 ms).
    """
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port))
    body = orjson.dumps({"pixels": test_pixels(1)[0].tolist()})
    for _ in range(50):
        _predict(connection, body)
    samples = []
    for _ in range(runs):
        run = []
        for _ in range(count):
            start = time.perf_counter()
            _predict(connection, body)
            run.append((time.perf_counter() - start) * 1e3)
        samples.append(np.asarray(run))
    connection.close()
    return samples


def _predict(connection: http.client.HTTPConnection, body: bytes) -> None:
    connection.request("POST", "/v1/predict", body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    response.read()
    if response.status != 200:
        raise SystemExit(f"sync predict answered {response.status}")


def _timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def table(
    args: argparse.Namespace,
    network: model.Classifier,
    csv_times: dict[str, list[float]],
    latency: list[NDArray[np.float64]],
) -> str:
    """Format the measurements as the section's Markdown."""
    # The reference is the faster local variant: NumPy's default BLAS threads or one thread.
    local = min(median(csv_times["local"]), median(csv_times["local_1_thread"]))
    medians = [float(np.median(run)) for run in latency]
    p99s = [float(np.percentile(run, 99)) for run in latency]

    def row(name: str, label: str, target: str) -> str:
        seconds = median(csv_times[name])
        runs = ", ".join(f"{value:.2f}" for value in csv_times[name])
        return f"| {label} | {seconds:.2f} s | {seconds / local:.2f}x | {target} | {runs} |"

    load = load_average()
    architecture = network.metadata["architecture"]["name"]
    lines = [
        f"`digits up --workers {args.workers}` on a private redis-server, model: "
        f"{architecture}. Load average at the end: {load} (the machine is shared).",
        "",
        f"{args.rows:,}-row Kaggle test.csv, {args.runs} interleaved runs:",
        "",
        "| path | median | vs faster local | target | runs (s) |",
        "| --- | --- | --- | --- | --- |",
        row("local", "local, one process (read CSV, forward, write), default BLAS threads", "-"),
        row("local_1_thread", "local, one process, one BLAS thread", "-"),
        row("submit_command", "`digits submit` command, end to end", "<= 1.5x"),
        row("submit_call", "`scripts.submit.submit()` (no interpreter start)", "<= 1.5x"),
        "",
        f"Single image, sync `POST /v1/predict`, one client, {args.requests} sequential "
        f"requests x {args.runs} runs:",
        "",
        "| statistic | value | target |",
        "| --- | --- | --- |",
        f"| median of run p50s | {median(medians):.2f} ms | <= {P50_TARGET:g} ms "
        f"{_verdict(median(medians) <= P50_TARGET)} |",
        f"| median of run p99s | {median(p99s):.2f} ms | <= {P99_TARGET:g} ms "
        f"{_verdict(median(p99s) <= P99_TARGET)} |",
        f"| run p50s | {', '.join(f'{value:.2f}' for value in medians)} ms | - |",
        f"| run p99s | {', '.join(f'{value:.2f}' for value in p99s)} ms | - |",
    ]
    return "\n".join(lines)


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"

"""`digits bench csv`: a Kaggle-sized test.csv through the service vs the same work locally.

    digits bench csv [--rows 28000] [--runs 5] [--workers 2]

The CSV has the competition's 28,000 rows: MNIST test images, then training images. The
service path is `POST /v1/batches` -> finished -> `submission.csv`, as `digits submit` does
it (the command, interpreter start included, and the `submit()` call alone); the local
path reads the CSV, runs the forward pass and writes the submission in one process. All
paths run in turns, on the same file, and must write the same submission.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

import model
from formats.kaggle_csv import write_kaggle_csv
from formats.mnist import N_PIXELS
from scripts.bench.report import load_average, median, write_section
from scripts.bench.service import ROOT, measure_csv
from scripts.bench.stack import SERVED_WEIGHTS, stack

KAGGLE_ROWS = 28_000  # rows in the competition's test.csv
TARGET = 1.5  # end to end, times the faster local pipeline


def register(subparsers: Any) -> None:
    """Add `digits bench csv`."""
    parser = subparsers.add_parser("csv", help="28,000-row test.csv: service vs local")
    add_csv_options(parser)
    parser.set_defaults(func=run)


def add_csv_options(parser: argparse.ArgumentParser) -> None:
    """Add the options every CSV benchmark takes."""
    parser.add_argument("--rows", type=int, default=KAGGLE_ROWS, help="rows in test.csv")
    parser.add_argument("--runs", type=int, default=5, help="runs per path (median)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)


def run(args: argparse.Namespace) -> int:
    """Measure the paths and write the `csv` section of BENCHMARKS.md."""
    network = model.load(SERVED_WEIGHTS)
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        csv = kaggle_test_csv(work / "test.csv", args.rows)
        with stack(args.workers) as service:
            times = measure_csv(csv, work, service.url, network, args.runs)
    write_section("csv", "Kaggle test.csv (28,000 rows): service vs local", table(args, times))
    return 0


def kaggle_test_csv(path: Path, rows: int) -> Path:
    """Write a Kaggle-format test.csv of `rows` MNIST images: test split first, then train."""
    write_kaggle_csv(path, mnist_images(rows))
    return path


def mnist_images(rows: int) -> NDArray[np.uint8]:
    """The first `rows` of MNIST's test then training images (random pixels without data)."""
    cache = ROOT / "data" / "mnist.npz"
    if not cache.is_file():
        return np.random.default_rng(0).integers(0, 256, (rows, N_PIXELS), dtype=np.uint8)
    with np.load(cache, allow_pickle=False) as arrays:
        images = np.concatenate([arrays["x_test"], arrays["x_train"]]).reshape(-1, N_PIXELS)
    return np.resize(images, (rows, N_PIXELS))


def table(args: argparse.Namespace, times: dict[str, list[float]]) -> str:
    """Format each path's median against the faster local pipeline."""
    local = min(median(times["local"]), median(times["local_1_thread"]))
    load = load_average()
    lines = [
        f"{args.rows:,} rows, {args.runs} runs per path, in turns. Service: `digits up "
        f"--workers {args.workers}` on its own redis-server, model: cnn. Load average at the "
        f"end: {load} (the machine is shared).",
        "",
        "| path | median | vs faster local | target | runs (s) |",
        "| --- | --- | --- | --- | --- |",
    ]
    paths = {
        "local": ("local, one process (read CSV, forward, write), default BLAS threads", "-"),
        "local_1_thread": ("local, one process, one BLAS thread", "-"),
        "submit_command": ("`digits submit` command, end to end", f"<= {TARGET}x"),
        "submit_call": ("`POST /v1/batches` -> finished -> submission.csv", f"<= {TARGET}x"),
    }
    for name, (label, target) in paths.items():
        seconds = median(times[name])
        ratio = seconds / local
        verdict = "" if target == "-" else (" met" if ratio <= TARGET else " MISSED")
        runs = ", ".join(f"{value:.2f}" for value in times[name])
        lines.append(f"| {label} | {seconds:.2f} s | {ratio:.2f}x | {target}{verdict} | {runs} |")
    return "\n".join(lines)

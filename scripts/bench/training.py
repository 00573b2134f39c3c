"""`digits bench training`: the documented `digits train` command, timed end to end.

Each run is a fresh `digits train --arch A --seed S --quiet` process writing to a temporary
directory (data already cached); its wall time, training time, accuracies and peak memory
are read from the process and its metrics.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from scripts.bench.report import load_average, median, write_section

TARGETS = {"mlp": "≥ 99.0% test accuracy in ≤ 60 s wall", "cnn": "≥ 99.5% test accuracy"}


def register(subparsers: Any) -> None:
    """Add `digits bench training`."""
    parser = subparsers.add_parser("training", help="time `digits train` end to end")
    parser.add_argument("--arch", choices=["mlp", "cnn"], default="mlp")
    parser.add_argument("--runs", type=int, default=5, help="training runs (seeds 0, 1, ...)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train `--runs` times and write the `training-<arch>` section."""
    results = [train_once(args.arch, seed) for seed in range(args.runs)]
    write_section(f"training-{args.arch}", f"Training: {args.arch}", table(args.arch, results))
    return 0


def train_once(arch: str, seed: int) -> dict[str, Any]:
    """Run one `digits train` process; return its wall time and metrics."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / f"{arch}.npz"
        command = [sys.executable, "-m", "scripts.cli", "train", "--arch", arch]
        command += ["--seed", str(seed), "--out", str(out), "--quiet"]
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - started
        metrics = json.loads(out.with_suffix(".metrics.json").read_text())
    return metrics | {"wall": wall, "seed": seed}


def table(arch: str, results: list[dict[str, Any]]) -> str:
    """Format one row per run and the medians, with the target."""
    lines = [
        f"Target: {TARGETS[arch]}. Each run is a fresh process with the data already cached; "
        "wall time includes start-up, loading the data, the final test evaluation and "
        "writing the weights and figures.",
        "",
        "| seed | wall s | training s | s/epoch | val accuracy | test accuracy | peak RSS MiB |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        lines.append(
            f"| {r['seed']} | {r['wall']:.1f} | {r['train_seconds']:.1f} | "
            f"{r['seconds_per_epoch']:.2f} | {100 * r['val_accuracy']:.2f}% | "
            f"{100 * r['test_accuracy']:.2f}% | {r['peak_rss_mib']} |"
        )
    wall = median([r["wall"] for r in results])
    accuracy = median([r["test_accuracy"] for r in results])
    worst = min(r["test_accuracy"] for r in results)
    lines += [
        "",
        f"Median wall time **{wall:.1f} s**, median test accuracy **{100 * accuracy:.2f}%** "
        f"(lowest {100 * worst:.2f}%), over {len(results)} run(s). Load average at the end: "
        f"{load_average()} (a shared machine times slower).",
    ]
    return "\n".join(lines)

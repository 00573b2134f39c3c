"""`digits bench uncertain`: what the "uncertain" flag catches, per test and per kind.

    digits bench uncertain [--count 1000] [--seed 0]

For each shipped model: the validation digits (where every threshold was chosen), the MNIST
test split (read here for the final numbers only), and `--count` generated non-digits of
every kind (`scripts/negatives.py`, seed 0: neither the detector's training seed 1 nor its
validation seed 2). Each share is split by test: the model's confidence threshold, the input
statistics, the not-a-digit detector; "any" is the flag the service gives. Last, what the
flags cost: each test's time on 2,000 test images beside the models' own, one BLAS thread,
median of 5 runs in turns.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from scripts.bench.report import load_average, median, write_section


def register(subparsers: Any) -> None:
    """Add `digits bench uncertain`."""
    parser = subparsers.add_parser("uncertain", help="uncertain flags on digits and non-digits")
    parser.add_argument("--count", type=int, default=1000, help="non-digits per kind")
    parser.add_argument("--seed", type=int, default=0, help="seed of the non-digits")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Measure every shipped model and write the `uncertain` section of BENCHMARKS.md."""
    import model
    from model.data import load_mnist
    from model.trainer import split
    from scripts.negatives import KINDS, generate
    from scripts.up import SHIPPED_WEIGHTS, WEIGHTS_DIR

    x_all, y_all, x_test, y_test = load_mnist()
    x_train, _, x_val, y_val = split(x_all, y_all, 5000, 0)
    negatives = {kind: generate(kind, args.count, args.seed, x_train) for kind in KINDS}
    # every shipped model, the one `digits up` serves first
    networks = {Path(name).stem: model.load(WEIGHTS_DIR / name) for name in SHIPPED_WEIGHTS}
    sections = []
    for name, network in networks.items():
        digits = [("validation digits", x_val, y_val), ("test digits", x_test, y_test)]
        rows = [_digit_row(network, *row) for row in digits]
        rows += [_negative_row(network, kind, images) for kind, images in negatives.items()]
        sections.append(_table(name, network, args, rows))
    sections.append(_costs(networks, x_test[:2000]))
    title = "Uncertain answers: digits kept, non-digits flagged"
    write_section("uncertain", title, "\n".join(sections))
    return 0


def _costs(networks: dict[str, Any], pixels: np.ndarray) -> str:
    """Time each model and each test on the same images, in turns; one BLAS thread."""
    from threadpoolctl import threadpool_limits

    from worker import nondigit, uncertainty

    detector = nondigit.shipped()
    work: dict[str, Callable[[], object]] = {
        **{
            f"{name} classifier": _bound(net.predict_proba, pixels)
            for name, net in networks.items()
        },
        "input statistics": _bound(uncertainty.not_one_digit, pixels),
        "detector": _bound(detector.score, pixels),
    }
    runs: dict[str, list[float]] = {name: [] for name in work}
    with threadpool_limits(limits=1, user_api="blas"):
        for _ in range(5):
            for name, call in work.items():
                started = time.perf_counter()
                call()
                runs[name].append(time.perf_counter() - started)
    served = median(runs[f"{next(iter(networks))} classifier"])
    lines = [
        f"### What the flags cost ({len(pixels):,} test images, one BLAS thread, median of 5; "
        f"load average {load_average()})",
        "",
        f"| work | seconds | per image | vs the {next(iter(networks))} classifier |",
        "| --- | --- | --- | --- |",
    ]
    for name, times in runs.items():
        seconds = median(times)
        per_image = seconds / len(pixels) * 1e3
        lines.append(f"| {name} | {seconds:.3f} | {per_image:.3f} ms | {seconds / served:.2f} |")
    return "\n".join(lines) + "\n"


def _bound(function: Callable[[np.ndarray], object], pixels: np.ndarray) -> Callable[[], object]:
    return lambda: function(pixels)


def _tests(network: Any, pixels: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    from worker import nondigit, uncertainty

    probabilities = network.predict_proba(pixels)
    below = uncertainty.threshold(network.metadata)
    by_test = {
        "confidence": probabilities.max(axis=1) < below,
        "input statistics": uncertainty.not_one_digit(pixels),
        "detector": nondigit.shipped().flags(pixels),
    }
    by_test["any"] = np.logical_or.reduce(list(by_test.values()))
    return probabilities, by_test


def _digit_row(network: Any, what: str, pixels: np.ndarray, labels: np.ndarray) -> list[str]:
    probabilities, flagged = _tests(network, pixels)
    right = probabilities.argmax(axis=1) == labels
    kept = ~flagged["any"]
    return [
        what,
        f"{len(pixels):,}",
        *(_share(flags) for flags in flagged.values()),
        f"{kept.mean():.2%} kept, {right[kept].mean():.2%} of them right "
        f"({right.mean():.2%} of all)",
    ]


def _negative_row(network: Any, kind: str, pixels: np.ndarray) -> list[str]:
    _, flagged = _tests(network, pixels)
    return [kind, f"{len(pixels):,}", *(_share(flags) for flags in flagged.values()), ""]


def _share(flags: np.ndarray) -> str:
    return f"{flags.mean():.1%}"


def _table(name: str, network: Any, args: argparse.Namespace, rows: list[list[str]]) -> str:
    from worker import nondigit, uncertainty

    header = ["images", "n", "confidence", "input statistics", "detector", "**any**", "digits"]
    lines = [
        f"### {name} ({network.version}), confidence threshold "
        f"{uncertainty.threshold(network.metadata):.4f}, detector threshold "
        f"{nondigit.shipped().threshold:.4f}",
        "",
        "Share flagged by each test and by any (the `uncertain` flag); non-digits: "
        f"{args.count} per kind, seed {args.seed}.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + " --- |" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
    ]
    return "\n".join(lines)

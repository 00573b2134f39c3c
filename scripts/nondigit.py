"""`digits train-nondigit`: train the "not a digit" detector (`worker/nondigit.py`).

Digits: the training split without its validation images (`model.trainer.split`, seed 0).
Non-digits: `scripts/negatives.py` with seed 1 (seed 0 is the benchmark's, seed 2 the
validation rates stored here). The threshold is the score that FLAG_SHARE of the validation
digits exceed: the detector's cost in coverage is chosen, not found. The MNIST test split
is not read.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from model.losses import softmax_cross_entropy
from model.optim import Adam
from model.trainer import split
from scripts.negatives import KINDS, generate
from worker import nondigit


@dataclass
class NonDigitConfig:
    """Knobs of one training run of the detector."""

    negatives: int = 8000  # generated non-digits per kind (seed 1)
    epochs: int = 12  # passes over digits + non-digits (8 left letters at 92% flagged)
    batch_size: int = 128  # images per Adam step
    lr: float = 2e-3  # Adam's rate for the first half, a quarter of it after
    flag_share: float = 0.003  # validation digits the detector alone may flag
    val_size: int = 5000  # as `digits train`: the same validation digits
    seed: int = 0  # initialisation, shuffling, split


def register(subparsers: Any) -> None:
    """Add `digits train-nondigit`."""
    parser = subparsers.add_parser("train-nondigit", help="train the not-a-digit detector")
    for name, value in asdict(NonDigitConfig()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    parser.add_argument("--out", type=Path, default=nondigit.WEIGHTS, help="weights file")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from model.data import load_mnist

    config = NonDigitConfig(**{name: getattr(args, name) for name in asdict(NonDigitConfig())})
    x_all, y_all = load_mnist()[:2]
    x_train, _, x_val, _ = split(x_all, y_all, config.val_size, config.seed)
    metadata = train(config, x_train, x_val, args.out)
    print(f"{args.out}: threshold {metadata['threshold']:.4f}, validation {metadata['validation']}")
    return 0


def train(
    config: NonDigitConfig, digits: np.ndarray, val_digits: np.ndarray, out: Path
) -> dict[str, Any]:
    """Train on `digits` (uint8 `(n, 784)`) against generated non-digits; write `out`."""
    started = time.perf_counter()
    negatives = np.concatenate([generate(k, config.negatives, 1, digits) for k in KINDS])
    X = np.concatenate([digits, negatives])
    y = np.r_[np.zeros(len(digits), np.int64), np.ones(len(negatives), np.int64)]
    rng = np.random.default_rng(config.seed)
    layers = nondigit.build(rng)
    optimizer = Adam()
    for epoch in range(config.epochs):
        lr = config.lr if epoch < config.epochs // 2 else config.lr / 4
        order = rng.permutation(len(X))
        for start in range(0, len(X), config.batch_size):
            rows = order[start : start + config.batch_size]
            _, dZ, _ = softmax_cross_entropy(nondigit.forward(layers, X[rows], True), y[rows])
            for layer in reversed(layers):
                dZ = layer.backward(dZ)
            optimizer.update(layers, lr)
        print(f"epoch {epoch + 1}/{config.epochs}: {time.perf_counter() - started:.0f} s")
    detector = nondigit.Detector(layers, {"threshold": 1.0})
    threshold = float(np.quantile(detector.score(val_digits), 1 - config.flag_share))
    detector.threshold = threshold
    validation = {
        kind: float(detector.flags(generate(kind, 500, 2, digits)).mean()) for kind in KINDS
    }
    metadata = {
        "threshold": threshold,
        "config": asdict(config),
        "validation": {"digits_flagged": float(detector.flags(val_digits).mean()), **validation},
        "train_seconds": round(time.perf_counter() - started, 1),
        "data": "MNIST training split minus validation; scripts/negatives.py seed 1",
    }
    nondigit.save(out, layers, metadata)
    return metadata

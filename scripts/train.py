"""`digits train`: train a network on MNIST, write its weights, metrics and figures.

Next to the weights `NAME.npz` it writes `NAME.metrics.json`, `NAME.curves.png`,
`NAME.confusion.png` and `NAME.errors.png`. The 60,000 training images are split into
training and validation (`val_size`); the best epoch by validation accuracy is kept, and
the 10,000 test images are evaluated once, at the end.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import resource
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

import model
from model import data, report
from model.augment import Warp
from model.trainer import TrainConfig, fit, scores, split

# Chosen on the validation split; every knob is explained in `model.trainer.TrainConfig`.
DEFAULTS = {
    "mlp": TrainConfig(
        arch="mlp",
        epochs=10,
        batch_size=256,
        optimizer="adam",
        lr=3e-3,
        label_smoothing=0.1,
        augment=True,
        warp=Warp(degrees=0.0, scale=0.0, shift=1.5),
    ),
    "cnn": TrainConfig(
        arch="cnn",
        epochs=20,
        batch_size=128,
        optimizer="adam",
        lr=2e-3,
        weight_decay=1e-2,
        label_smoothing=0.1,
        augment=True,
        warp=Warp(degrees=10.0, scale=0.1, shift=2.5),
    ),
}


def register(subparsers: Any) -> None:
    """Add the `train` subcommand."""
    parser = subparsers.add_parser(
        "train",
        help="train the MLP or CNN on MNIST and write weights, metrics and figures",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--arch", choices=sorted(DEFAULTS), default="mlp", help="fast mlp or accurate cnn"
    )
    parser.add_argument("--epochs", type=int, help="passes over the training split")
    parser.add_argument("--seed", type=int, help="seed of every random choice (default 0)")
    parser.add_argument("--batch-size", type=int, help="images per gradient step")
    parser.add_argument("--lr", type=float, help="peak learning rate")
    parser.add_argument("--data", help="data directory (default $DIGITS_DATA_DIR or ./data)")
    parser.add_argument("--out", type=Path, help="weights file (default artifacts/<arch>.npz)")
    parser.add_argument(
        "--threads", type=int, help="cores to train on (default: all); 1 repeats a run bit for bit"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train with the defaults of `--arch` overridden by the given flags."""
    flags = {"epochs": args.epochs, "seed": args.seed, "batch_size": args.batch_size}
    flags |= {"lr": args.lr, "threads": args.threads}
    config = replace(DEFAULTS[args.arch], **{k: v for k, v in flags.items() if v is not None})
    out = args.out or Path("artifacts") / f"{args.arch}.npz"
    metrics = train(config, data.load_mnist(args.data), out, progress=not args.quiet)
    print(
        f"{out}: version {metrics['version']}, test accuracy {metrics['test_accuracy']:.4f}, "
        f"validation accuracy {metrics['val_accuracy']:.4f}, "
        f"trained in {metrics['train_seconds']:.1f} s"
    )
    return 0


def train(
    config: TrainConfig, splits: tuple[np.ndarray, ...], out: Path, progress: bool = True
) -> dict[str, Any]:
    """Train, evaluate once on the test split, save weights and report; return the metrics."""
    x_all, y_all, x_test, y_test = splits
    x_train, y_train, x_val, y_val = split(x_all, y_all, config.val_size, config.seed)
    net = model.build(config.arch, config.seed)
    started = time.perf_counter()
    history = fit(net, config, (x_train, y_train), (x_val, y_val), progress)
    train_seconds = time.perf_counter() - started
    best = max(history, key=lambda record: record["val_accuracy"])
    probabilities = net.predict_proba(x_test)  # the one look at the test split
    test_accuracy, test_loss = scores(probabilities, y_test)
    net.metadata |= {
        "epochs": config.epochs,
        "data_checksum": data.checksum(x_all, y_all),
        "training": asdict(config),
        "metrics": {
            "val_accuracy": best["val_accuracy"],
            "best_epoch": best["epoch"],
            "test_accuracy": test_accuracy,
            "test_loss": test_loss,
            "train_seconds": round(train_seconds, 1),
        },
        "created_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "library_versions": {"python": platform.python_version(), "numpy": np.__version__},
    }
    version = model.save(net, out)
    metrics = net.metadata["metrics"] | {
        "arch": config.arch,
        "version": version,
        "weights": out.name,
        "seconds_per_epoch": round(train_seconds / config.epochs, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "confusion": report.confusion(y_test, probabilities.argmax(axis=1)).tolist(),
        "history": history,
    }
    write_report(out, metrics, history, x_test, y_test, probabilities)
    return metrics


def write_report(
    out: Path,
    metrics: dict[str, Any],
    history: list[dict[str, Any]],
    x_test: np.ndarray,
    y_test: np.ndarray,
    probabilities: np.ndarray,
) -> None:
    """Write metrics.json and the three figures next to the weights file."""
    stem = out.with_suffix("")
    Path(f"{stem}.metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    report.plot_curves(history, Path(f"{stem}.curves.png"))
    title = f"{metrics['arch']} on the MNIST test split: {100 * metrics['test_accuracy']:.2f}%"
    report.plot_confusion(np.array(metrics["confusion"]), Path(f"{stem}.confusion.png"), title)
    report.plot_errors(x_test, y_test, probabilities, Path(f"{stem}.errors.png"))

"""`digits train`: train a network on MNIST, write its weights, metrics and figures.

Next to the weights `NAME.npz` it writes `NAME.metrics.json`, `NAME.curves.png`,
`NAME.confusion.png`, `NAME.errors.png` and `NAME.reliability.png`. The 60,000 training
images are split into training and validation (`val_size`); the best epoch by validation
accuracy is kept, a temperature and the "uncertain" confidence threshold are fitted on the
validation split (model.calibration), and the 10,000 test images are evaluated once, at
the end.
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
from model import calibration, data, report
from model.augment import Warp
from model.trainer import TrainConfig, fit, split

# Chosen on the validation split; every knob is explained in `model.trainer.TrainConfig`.
DEFAULTS = {
    "mlp": TrainConfig(
        arch="mlp",
        epochs=15,
        batch_size=256,
        optimizer="adam",
        lr=3e-3,
        label_smoothing=0.1,
        augment=True,
        warp=Warp(degrees=8.0, scale=0.08, shift=1.5),
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
    parser.add_argument(
        "--elastic", type=float, metavar="ALPHA",
        help="elastic distortion scale in pixels (Simard et al. 2003 use 34; default off)",
    )  # fmt: skip
    parser.add_argument(
        "--stroke", type=float, metavar="SHARE",
        help="share of images made one pixel thicker or thinner (default 0)",
    )  # fmt: skip
    parser.add_argument(
        "--low-res", type=float, metavar="SHARE",
        help="share of images shrunk to 8-16 px and enlarged back (default 0)",
    )  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train with the defaults of `--arch` overridden by the given flags."""
    config = config_from(args)
    out = args.out or Path("artifacts") / f"{args.arch}.npz"
    metrics = train(config, data.load_mnist(args.data), out, progress=not args.quiet)
    print(f"{out}: version {metrics['version']}, trained in {metrics['train_seconds']:.1f} s")
    print(describe(metrics))
    return 0


def config_from(args: argparse.Namespace) -> TrainConfig:
    """Return the defaults of `args.arch` with the flags given on the command line."""
    flags = {"epochs": args.epochs, "seed": args.seed, "batch_size": args.batch_size}
    flags |= {"lr": args.lr, "threads": args.threads}
    config = replace(DEFAULTS[args.arch], **{k: v for k, v in flags.items() if v is not None})
    distortions = {"elastic_alpha": args.elastic, "stroke": args.stroke, "low_res": args.low_res}
    distortions = {k: v for k, v in distortions.items() if v is not None}
    if distortions:
        config = replace(config, augment=True, warp=replace(config.warp, **distortions))
    return config


def describe(metrics: dict[str, Any]) -> str:
    """Return the calibration and accuracy lines of a metrics record, one per split."""
    lines = [f"temperature {metrics['temperature']:.4f}, "
             f"confidence threshold {metrics['confidence_threshold']:.4f}"]  # fmt: skip
    for part in ("val", "test"):
        lines.append(
            f"{part:>4}: accuracy {metrics[f'{part}_accuracy']:.4f}, "
            f"ECE {100 * metrics[f'{part}_ece']:.2f}%, NLL {metrics[f'{part}_nll']:.4f}, "
            f"Brier {metrics[f'{part}_brier']:.4f}, "
            f"not flagged {100 * metrics[f'{part}_coverage']:.2f}% "
            f"at {100 * metrics[f'{part}_selective_accuracy']:.2f}% right"
        )
    return "\n".join(lines)


def train(
    config: TrainConfig, splits: tuple[np.ndarray, ...], out: Path, progress: bool = True
) -> dict[str, Any]:
    """Train, calibrate on validation, evaluate once on the test split, save and report."""
    x_all, y_all, x_test, y_test = splits
    x_train, y_train, x_val, y_val = split(x_all, y_all, config.val_size, config.split_seed)
    net = model.build(config.arch, config.seed)
    started = time.perf_counter()
    history = fit(net, config, (x_train, y_train), (x_val, y_val), progress)
    train_seconds = time.perf_counter() - started
    best = max(history, key=lambda record: record["val_accuracy"])
    net.metadata |= {
        "epochs": config.epochs,
        "data_checksum": data.checksum(x_all, y_all),
        "training": asdict(config),
        "metrics": {"best_epoch": best["epoch"], "train_seconds": round(train_seconds, 1)},
        "created_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "library_versions": {"python": platform.python_version(), "numpy": np.__version__},
    }
    extra = {"seconds_per_epoch": round(train_seconds / config.epochs, 2), "history": history}
    return finish(net, out, (x_val, y_val), (x_test, y_test), extra)


def finish(
    net: Any,
    out: Path,
    val: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Calibrate `net` on `val`, evaluate it once on `test`, save it, write the report.

    Sets `metadata["calibration"]` (temperature, confidence threshold: model.calibration)
    and adds to `metadata["metrics"]` accuracy, ECE (15 bins), NLL, Brier score, selective
    accuracy and coverage on both splits (`val_*`, `test_*`). Returns the metrics.json
    record, `extra` (e.g. the training `history`) included.
    """
    (x_val, y_val), (x_test, y_test) = val, test
    net.metadata[calibration.CALIBRATION] = calibration.calibrate(net.logits(x_val), y_val)
    threshold = net.confidence_threshold
    val_probabilities = net.predict_proba(x_val)
    probabilities = net.predict_proba(x_test)  # the one look at the test split
    scores = {"val": calibration.summary(val_probabilities, y_val, threshold)}
    scores["test"] = calibration.summary(probabilities, y_test, threshold)
    net.metadata["metrics"] = net.metadata.get("metrics", {}) | {
        f"{split}_{name}": value
        for split, record in scores.items()
        for name, value in record.items()
    }
    net.metadata["metrics"] |= {"temperature": net.temperature, "confidence_threshold": threshold}
    version = model.save(net, out)
    metrics = net.metadata["metrics"] | {
        "arch": net.metadata["architecture"]["name"],
        "version": version,
        "weights": out.name,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "confusion": report.confusion(y_test, probabilities.argmax(axis=1)).tolist(),
    }
    metrics |= extra or {}
    write_report(
        out,
        metrics,
        {"validation": (val_probabilities, y_val), "test": (probabilities, y_test)},
        x_test,
    )
    return metrics


def write_report(
    out: Path,
    metrics: dict[str, Any],
    splits: dict[str, tuple[np.ndarray, np.ndarray]],
    x_test: np.ndarray,
) -> None:
    """Write metrics.json and the figures next to the weights file.

    `splits` maps "validation" and "test" to (calibrated probabilities, labels); the
    learning curves are drawn only when `metrics` holds a training history.
    """
    stem = out.with_suffix("")
    Path(f"{stem}.metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if "history" in metrics:
        report.plot_curves(metrics["history"], Path(f"{stem}.curves.png"))
    title = f"{metrics['arch']} on the MNIST test split: {100 * metrics['test_accuracy']:.2f}%"
    report.plot_confusion(np.array(metrics["confusion"]), Path(f"{stem}.confusion.png"), title)
    probabilities, y_test = splits["test"]
    report.plot_errors(x_test, y_test, probabilities, Path(f"{stem}.errors.png"))
    title = f"{metrics['arch']}, temperature {metrics['temperature']:.3f}"
    report.plot_reliability(splits, Path(f"{stem}.reliability.png"), title)

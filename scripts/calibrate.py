"""`digits calibrate`: fit temperature scaling and the "uncertain" threshold of a weights file.

For weights trained before calibration existed, or to refit: the validation split is cut
again exactly as training cut it (same size, same seed, checked against the training data
checksum), the temperature and threshold are fitted there, the test split is evaluated
once, and the weights (a new version), metrics.json and figures are rewritten.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import model
from model import data
from model.trainer import split
from scripts.ensemble import validation_split_of
from scripts.train import describe, finish


def register(subparsers: Any) -> None:
    """Add the `calibrate` subcommand."""
    parser = subparsers.add_parser(
        "calibrate",
        help="fit temperature scaling and the uncertain threshold of a weights file",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("weights", type=Path, help="weights file to calibrate")
    parser.add_argument("--out", type=Path, help="where to write (default: over `weights`)")
    parser.add_argument("--data", help="data directory (default $DIGITS_DATA_DIR or ./data)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Calibrate `args.weights` on its own validation split and rewrite it with its report."""
    net = model.load(args.weights)
    x_all, y_all, x_test, y_test = data.load_mnist(args.data)
    if data.checksum(x_all, y_all) != net.metadata.get("data_checksum"):
        raise SystemExit(
            f"{args.weights} was trained on other data (checksum "
            f"{net.metadata.get('data_checksum')}): its validation split cannot be cut again"
        )
    _, _, x_val, y_val = split(x_all, y_all, *validation_split_of(net))
    out = args.out or args.weights
    previous = Path(f"{args.weights.with_suffix('')}.metrics.json")
    extra = json.loads(previous.read_text()) if previous.is_file() else {}
    net.metadata.get("metrics", {}).pop("test_loss", None)  # uncalibrated: superseded
    kept = {key: extra[key] for key in ("history", "seconds_per_epoch") if key in extra}
    metrics = finish(net, out, (x_val, y_val), (x_test, y_test), kept)
    print(f"{out}: version {metrics['version']}")
    print(describe(metrics))
    return 0

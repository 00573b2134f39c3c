"""`digits ensemble`: average trained networks into one calibrated weights file.

The members must have been trained on the same data with the same validation split
(`val_size`, `split_seed`), so that split is still unseen by all of them: the ensemble's
temperature and "uncertain" threshold are fitted there, and the test split is evaluated
once. Logits are averaged with equal weights (model.ensemble).
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path
from typing import Any

import model
from model import data
from model.trainer import split
from scripts.train import describe, finish


def register(subparsers: Any) -> None:
    """Add the `ensemble` subcommand."""
    parser = subparsers.add_parser(
        "ensemble",
        help="average trained networks into one calibrated weights file",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("members", type=Path, nargs="+", help="weights files of the members")
    parser.add_argument("--out", type=Path, required=True, help="weights file to write")
    parser.add_argument("--data", help="data directory (default $DIGITS_DATA_DIR or ./data)")
    parser.set_defaults(func=run)


def validation_split_of(network: model.Classifier) -> tuple[int, int]:
    """Return (val_size, split seed) of a trained model's validation split."""
    training = network.metadata["training"]
    # Weights from before `split_seed` existed cut their validation split with `seed`.
    return training["val_size"], training.get("split_seed", training["seed"])


def run(args: argparse.Namespace) -> int:
    """Build, calibrate, evaluate and save the ensemble of `args.members`."""
    members = [model.load(path) for path in args.members]
    networks = [member for member in members if isinstance(member, model.Network)]
    if len(networks) != len(members):
        raise SystemExit("members must be single networks, not ensembles")
    x_all, y_all, x_test, y_test = data.load_mnist(args.data)
    checksum = data.checksum(x_all, y_all)
    splits = {validation_split_of(network) for network in networks}
    sums = {network.metadata.get("data_checksum") for network in networks}
    if len(splits) != 1 or sums != {checksum}:
        raise SystemExit(
            f"members differ in training data {sorted(map(str, sums))} or validation split "
            f"{sorted(splits)}: no split is unseen by all of them"
        )
    (val_size, split_seed) = splits.pop()
    _, _, x_val, y_val = split(x_all, y_all, val_size, split_seed)
    seconds = [network.metadata["metrics"].get("train_seconds") for network in networks]
    ensemble = model.Ensemble(
        networks,
        {
            "normalisation": networks[0].metadata["normalisation"],
            "data_checksum": checksum,
            "training": {"val_size": val_size, "split_seed": split_seed, "seed": split_seed},
            "metrics": {"member_train_seconds": seconds},
            "created_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        },
    )
    metrics = finish(ensemble, args.out, (x_val, y_val), (x_test, y_test))
    print(f"{args.out}: version {metrics['version']}, {len(networks)} members")
    print(describe(metrics))
    return 0

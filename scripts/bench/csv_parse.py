"""`digits bench csv-parse`: the Kaggle CSV reader vs `pandas.read_csv`, same bytes, in turns.

    digits bench csv-parse [--rows 28000] [--runs 7]

The file is the competition-sized test.csv of `digits bench csv` (MNIST images), written as
Kaggle ships it and as people re-save it: pandas' default `to_csv` after a float step (an
index column, `12.0`), every field quoted (RFC 4180), and gzip-compressed. Both readers get
the same bytes from memory and must return the same pixels (checked once, untimed); pandas
is called as its users call it (`read_csv`, index column named when there is one, gzip named,
then `.to_numpy()` as uint8).
pandas comes from the `bench` extra: `pip install -e '.[bench]'`.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from formats.kaggle_csv import PIXEL_NAMES, parse_kaggle_csv
from scripts.bench.batch import KAGGLE_ROWS, mnist_images
from scripts.bench.report import load_average, median, write_section

TARGET = 1.0  # the reader must stay at least as fast as pandas on Kaggle's own format


def register(subparsers: Any) -> None:
    """Add `digits bench csv-parse`."""
    parser = subparsers.add_parser("csv-parse", help="Kaggle CSV reader vs pandas.read_csv")
    parser.add_argument("--rows", type=int, default=KAGGLE_ROWS, help="rows in the file")
    parser.add_argument("--runs", type=int, default=7, help="timed runs per reader (median)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Time both readers on every variant and write the `csv-parse` section."""
    import pandas as pd

    pixels = mnist_images(args.rows)
    rows = []
    for name, (text, options) in variants(pd, pixels).items():

        def ours(text: bytes = text) -> NDArray[np.uint8]:
            return parse_kaggle_csv(text).pixels

        def theirs(text: bytes = text, options: dict[str, Any] = options) -> NDArray[np.uint8]:
            return np.asarray(pd.read_csv(io.BytesIO(text), **options).to_numpy(), np.uint8)

        rows.append(
            (name, len(text), timed(ours, pixels, args.runs), timed(theirs, pixels, args.runs))
        )
    write_section("csv-parse", "Kaggle CSV reader vs pandas.read_csv", table(args, rows))
    return 0


def variants(pd: Any, pixels: NDArray[np.uint8]) -> dict[str, tuple[bytes, dict[str, Any]]]:
    """The file's bytes in each way it comes, and the read_csv options a pandas user gives."""
    frame = pd.DataFrame(pixels, columns=PIXEL_NAMES)
    plain = frame.to_csv(index=False).encode()
    return {
        "Kaggle format": (plain, {}),
        "pandas `to_csv()` after a float step": (
            frame.astype(float).to_csv().encode(),
            {"index_col": 0},
        ),
        "every field quoted": (frame.to_csv(index=False, quoting=csv.QUOTE_ALL).encode(), {}),
        "gzip, level 1": (gzip.compress(plain, compresslevel=1), {"compression": "gzip"}),
    }


def timed(
    read: Callable[[], NDArray[np.uint8]], expected: NDArray[np.uint8], runs: int
) -> list[float]:
    """Seconds of each of `runs` calls, after one untimed call that checks the answer."""
    if not np.array_equal(read(), expected):
        raise AssertionError("the readers disagree on the pixels")
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        read()
        times.append(time.perf_counter() - started)
    return times


def table(args: argparse.Namespace, rows: list[tuple[str, int, list[float], list[float]]]) -> str:
    """One row per variant: both medians and how many times faster the reader is."""
    lines = [
        f"{args.rows:,} rows of MNIST images, from bytes in memory, {args.runs} timed runs per "
        f"reader after one checked run (the reader's runs, then pandas', variant by variant); "
        f"pandas "
        f"{_pandas_version()}. Target: at least {TARGET:g}x pandas on Kaggle's format. Load "
        f"average at the end: {load_average()}.",
        "",
        "| file | size | reader | pandas.read_csv | pandas / reader |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, size, ours, theirs in rows:
        ratio = median(theirs) / median(ours)
        lines.append(
            f"| {name} | {size / 1e6:.1f} MB | {median(ours):.3f} s | {median(theirs):.3f} s "
            f"| {ratio:.2f}x |"
        )
    return "\n".join(lines)


def _pandas_version() -> str:
    import pandas as pd

    return str(pd.__version__)

"""The local MNIST cache: fetched once from the first source that works, then loaded.

The data directory (default `./data`, or `$DIGITS_DATA_DIR`) holds:

    mnist.npz         x_train (n, 784) uint8, y_train (n,) int64, x_test, y_test
    train.csv         the training split in Kaggle's format (`label,pixel0,...,pixel783`)
    test.csv          the test images in Kaggle's format, no labels (`pixel0,...,pixel783`)
    test_labels.csv   the answer key for test.csv (`ImageId,Label`, ImageId 1-based)
    source.json       which source filled the cache, the split sizes, the training checksum

Sources `mnist` and `pypi` give MNIST's 60,000 training and 10,000 test images. Kaggle
publishes 42,000 labelled and 28,000 unlabelled images: source `kaggle` keeps its own
train.csv and test.csv, holds out the last 10,000 labelled rows as the test split of
mnist.npz (32,000 remain for training), and has no answer key.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from formats.kaggle_csv import CSVFormatError, read_kaggle_csv, write_kaggle_csv
from formats.mnist import N_PIXELS
from model.idx import IDXFormatError, read_idx
from model.sources import SOURCES, Say, SourceUnavailable, Splits

__all__ = [
    "CSVFormatError",
    "IDXFormatError",
    "SourceUnavailable",
    "checksum",
    "data_dir",
    "fetch",
    "load_mnist",
    "read_idx",
    "read_kaggle_csv",
    "write_kaggle_csv",
]

ARRAYS = ("x_train", "y_train", "x_test", "y_test")
CACHE = "mnist.npz"
TRAIN_CSV = "train.csv"
TEST_CSV = "test.csv"
TEST_LABELS = "test_labels.csv"
MANIFEST = "source.json"
SOURCE_NAMES = ("auto", *SOURCES)  # auto tries the others in this order


def data_dir(path: str | Path | None = None) -> Path:
    """Resolve the data directory: the argument, else $DIGITS_DATA_DIR, else ./data."""
    return Path(path if path is not None else os.environ.get("DIGITS_DATA_DIR", "data"))


def load_mnist(path: str | Path | None = None) -> Splits:
    """Return (x_train, y_train, x_test, y_test) from the cache, fetching it first if missing."""
    directory = data_dir(path)
    if not (directory / CACHE).is_file():
        fetch(directory)
    try:
        with np.load(directory / CACHE, allow_pickle=False) as cache:
            x_train, y_train, x_test, y_test = (cache[name] for name in ARRAYS)
        return _checked((x_train, y_train, x_test, y_test))
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as error:
        raise ValueError(
            f"{directory / CACHE} is damaged ({error}); run `digits fetch-data --force`"
        ) from error


def checksum(x: NDArray, y: NDArray | None = None) -> str:
    """Return the first 16 hex digits of the SHA-256 of the arrays' bytes."""
    digest = hashlib.sha256(np.ascontiguousarray(x).tobytes())
    if y is not None:
        digest.update(np.ascontiguousarray(y).tobytes())
    return digest.hexdigest()[:16]


def fetch(
    path: str | Path | None = None, source: str = "auto", *, force: bool = False, say: Say = print
) -> str:
    """Fill the cache from `source` unless it is already there; return the source's name."""
    if source not in SOURCE_NAMES:
        raise ValueError(f"unknown data source {source!r}; choose from {', '.join(SOURCE_NAMES)}")
    directory = data_dir(path)
    manifest = None if force else _complete_cache(directory)
    if manifest:
        say(
            f"{directory} already holds the data (from {manifest['source']}, "
            f"{manifest['train']:,} training and {manifest['test']:,} test images); "
            "use --force to fetch again"
        )
        return str(manifest["source"])
    directory.mkdir(parents=True, exist_ok=True)
    # Everything is built in a scratch directory next to the cache and renamed into place, so
    # an interrupted fetch never leaves half a file behind.
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=directory) as scratch:
        name, splits = _first_source(source, Path(scratch), say)
        _store(directory, Path(scratch), name, splits)
    say(f"saved {len(splits[0]):,} training and {len(splits[2]):,} test images to {directory}")
    return name


def _complete_cache(directory: Path) -> dict | None:
    """Return the manifest if every cached file is there, else None."""
    if not all((directory / name).is_file() for name in (CACHE, TRAIN_CSV, TEST_CSV, MANIFEST)):
        return None
    try:
        return json.loads((directory / MANIFEST).read_text())
    except ValueError:
        return None


def _first_source(source: str, scratch: Path, say: Say) -> tuple[str, Splits]:
    names = tuple(SOURCES) if source == "auto" else (source,)
    skipped = []
    for name in names:
        workdir = scratch / name
        workdir.mkdir()
        try:
            splits = _checked(SOURCES[name](workdir, say))
        except (SourceUnavailable, ValueError) as error:
            if source != "auto":
                raise
            say(f"auto: skipping {name}: {error}")
            skipped.append(f"{name}: {error}")
            continue
        if source == "auto":
            say(f"auto: using {name}")
        return name, splits
    raise SourceUnavailable("no data source worked:\n  " + "\n  ".join(skipped))


def _store(directory: Path, scratch: Path, source: str, splits: Splits) -> None:
    ready = scratch / "ready"
    ready.mkdir()
    with open(ready / CACHE, "wb") as stream:
        x_train, y_train, x_test, y_test = splits
        np.savez(stream, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    if source == "kaggle":
        # Kaggle's own files; its test.csv has no answer key, so an older key must go.
        for name in (TRAIN_CSV, TEST_CSV):
            os.replace(scratch / source / name, ready / name)
        (directory / TEST_LABELS).unlink(missing_ok=True)
    else:
        _write_csvs(ready, splits)
    manifest = {"source": source, "train": len(splits[0]), "test": len(splits[2])}
    manifest["checksum"] = checksum(splits[0], splits[1])
    (ready / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    # The cache file goes last: its presence means the whole set is complete.
    (directory / CACHE).unlink(missing_ok=True)
    for file in sorted(ready.iterdir(), key=lambda file: file.name == CACHE):
        os.replace(file, directory / file.name)


def _write_csvs(directory: Path, splits: Splits) -> None:
    x_train, y_train, x_test, y_test = splits
    write_kaggle_csv(directory / TRAIN_CSV, x_train, y_train)
    write_kaggle_csv(directory / TEST_CSV, x_test)
    answers = np.column_stack([np.arange(1, len(y_test) + 1), y_test])
    with open(directory / TEST_LABELS, "w") as stream:
        stream.write("ImageId,Label\n")
        np.savetxt(stream, answers, fmt="%d", delimiter=",")


def _checked(splits: Splits) -> Splits:
    """Check dtypes, shapes and label range of (x_train, y_train, x_test, y_test)."""
    for x, y in (splits[:2], splits[2:]):
        if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != N_PIXELS:
            raise ValueError(f"images must be uint8 (n, {N_PIXELS}), got {x.dtype} {x.shape}")
        if y.dtype != np.int64 or y.shape != (len(x),):
            raise ValueError(f"labels must be int64 ({len(x)},), got {y.dtype} {y.shape}")
        if len(y) == 0 or y.min() < 0 or y.max() > 9:
            raise ValueError("labels must be digits 0-9, and a split cannot be empty")
    return splits

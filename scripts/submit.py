"""`digits submit`: send a Kaggle CSV to the running service and write submission.csv.

The upload is gzip-compressed: the 60,000-row train.csv of 109.6 MB is over the service's
100 MiB body limit, 17 MB compressed (level 1, 2.3 s on the Xeon of BENCHMARKS.md; level 6
gives 13 MB in 9.3 s). Kaggle's digit-recognizer.zip and .csv.gz files go as they are.
The accuracy is printed whenever labels are known: a `label` column (the service scores
it), or an answer key `test_labels.csv` (`ImageId,Label`) beside the file.
"""

from __future__ import annotations

import argparse
import csv as csv_module
import os
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import requests
from tqdm import tqdm

DEFAULT_URL = "http://127.0.0.1:8000"
POLL_SECONDS = 0.1
ANSWER_KEY = "test_labels.csv"  # what `digits fetch-data` writes beside test.csv
# Level 1: 4x faster than gzip's default level 6, 6.4x smaller instead of 8.3x (measured).
GZIP_LEVEL = 1
GZIP_WINDOW = 16 + zlib.MAX_WBITS  # zlib's wbits for the gzip container (RFC 1952)
READ_BLOCK = 1 << 20
# Files sent as they are, by their first bytes (formats.compressed recognises the same).
ARCHIVE_TYPES = {b"PK\x03\x04": "application/zip", b"\x1f\x8b": "application/gzip"}


class SubmitError(RuntimeError):
    """The service refused the file or the batch failed."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `submit` subcommand."""
    parser = subparsers.add_parser("submit", help="label a Kaggle CSV through the service")
    parser.add_argument(
        "csv",
        type=Path,
        help="Kaggle test.csv or train.csv, a .csv.gz, or digit-recognizer.zip (its test.csv)",
    )
    parser.add_argument("--out", type=Path, default=Path("submission.csv"))
    parser.add_argument(
        "--url",
        default=os.environ.get("DIGITS_URL", DEFAULT_URL),
        help="the service (default: $DIGITS_URL or %(default)s)",
    )
    parser.add_argument(
        "--key",
        default=os.environ.get("DIGITS_API_KEY"),
        help="API key, sent as a bearer token (default: $DIGITS_API_KEY)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=submit_command)


def submit_command(args: argparse.Namespace) -> int:
    """Run `digits submit`."""
    try:
        batch = submit(
            args.csv, args.out, args.url.rstrip("/"), progress=not args.quiet, key=args.key
        )
    except (OSError, requests.RequestException, SubmitError) as error:
        print(f"digits submit: {error}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({batch['rows']} rows, model {batch['model_version']})")
    if batch.get("accuracy") is not None:
        print(f"accuracy {batch['accuracy']:.4f}")
        return 0
    key = args.csv.with_name(ANSWER_KEY)
    if key.exists():
        print(score(args.out, key))
    return 0


def score(submission: Path, key: Path) -> str:
    """Compare a submission with an answer key (both `ImageId,Label`); say the accuracy."""
    answers, expected = _labels(submission), _labels(key)
    if answers.keys() != expected.keys():
        return f"not scored: {key} does not hold the same ImageIds as the file"
    correct = sum(answers[image_id] == label for image_id, label in expected.items())
    return f"accuracy {correct / len(expected):.4f} (against {key})"


def _labels(path: Path) -> dict[str, str]:
    with path.open(newline="") as stream:
        return {row["ImageId"]: row["Label"] for row in csv_module.DictReader(stream)}


def submit(
    csv: Path, out: Path, url: str, progress: bool = True, key: str | None = None
) -> dict[str, Any]:
    """Upload `csv`, wait for the batch with a progress bar, save its submission; return it.

    `key` is sent as `Authorization: Bearer <key>` on every request when given.
    """
    session = requests.Session()
    if key:
        session.headers["Authorization"] = f"Bearer {key}"
    body, headers = _body(csv)
    accepted = _json(session.post(f"{url}/v1/batches", data=body, headers=headers), 202)
    batch = _wait(session, url + accepted["status_url"], accepted["rows"], progress)
    with session.get(url + accepted["submission_url"], stream=True) as download:
        _check(download, 200)
        with out.open("wb") as target:
            for block in download.iter_content(chunk_size=1 << 16):
                target.write(block)
    return batch


def _body(path: Path) -> tuple[bytes, dict[str, str]]:
    """The upload: a zip or gzip file as it is, anything else gzip-compressed."""
    with path.open("rb") as stream:
        start = stream.read(4)
        for magic, content_type in ARCHIVE_TYPES.items():
            if start.startswith(magic):
                return start + stream.read(), {"Content-Type": content_type}
        packer = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, GZIP_WINDOW)
        parts = [packer.compress(start)]
        while block := stream.read(READ_BLOCK):
            parts.append(packer.compress(block))
    parts.append(packer.flush())
    return b"".join(parts), {"Content-Type": "text/csv", "Content-Encoding": "gzip"}


def _wait(session: requests.Session, status_url: str, rows: int, progress: bool) -> dict[str, Any]:
    with tqdm(total=rows, unit="row", disable=not progress, file=sys.stderr) as bar:
        while True:
            batch = _json(session.get(status_url), 200)
            bar.update(batch["rows_done"] - bar.n)
            if batch["status"] == "finished":
                return batch
            if batch["status"] == "failed":
                raise SubmitError(f"the batch failed: {batch.get('error', 'no message')}")
            time.sleep(POLL_SECONDS)


def _json(response: requests.Response, expected: int) -> dict[str, Any]:
    _check(response, expected)
    found: dict[str, Any] = response.json()
    return found


def _check(response: requests.Response, expected: int) -> None:
    """Raise SubmitError with the service's own message unless the status is `expected`."""
    if response.status_code == expected:
        return
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text[:200]
    raise SubmitError(f"{response.request.method} {response.url}: {response.status_code} {message}")

"""`digits submit`: send a Kaggle CSV to the running service and write submission.csv."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import requests
from tqdm import tqdm

DEFAULT_URL = "http://127.0.0.1:8000"
POLL_SECONDS = 0.1


class SubmitError(RuntimeError):
    """The service refused the file or the batch failed."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `submit` subcommand."""
    parser = subparsers.add_parser("submit", help="label a Kaggle CSV through the service")
    parser.add_argument("csv", type=Path, help="Kaggle test.csv (a label column is optional)")
    parser.add_argument("--out", type=Path, default=Path("submission.csv"))
    parser.add_argument(
        "--url",
        default=os.environ.get("DIGITS_URL", DEFAULT_URL),
        help="the service (default: $DIGITS_URL or %(default)s)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=submit_command)


def submit_command(args: argparse.Namespace) -> int:
    """Run `digits submit`."""
    try:
        batch = submit(args.csv, args.out, args.url.rstrip("/"), progress=not args.quiet)
    except (OSError, requests.RequestException, SubmitError) as error:
        print(f"digits submit: {error}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({batch['rows']} rows, model {batch['model_version']})")
    if batch.get("accuracy") is not None:
        print(f"accuracy {batch['accuracy']:.4f}")
    return 0


def submit(csv: Path, out: Path, url: str, progress: bool = True) -> dict[str, Any]:
    """Upload `csv`, wait for the batch with a progress bar, save its submission; return it."""
    session = requests.Session()
    with csv.open("rb") as stream:
        response = session.post(
            f"{url}/v1/batches", data=stream, headers={"Content-Type": "text/csv"}
        )
    accepted = _json(response, 202)
    batch = _wait(session, url + accepted["status_url"], accepted["rows"], progress)
    with session.get(url + accepted["submission_url"], stream=True) as download:
        _check(download, 200)
        with out.open("wb") as target:
            for block in download.iter_content(chunk_size=1 << 16):
                target.write(block)
    return batch


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

"""`digits submit`: send a Kaggle CSV to the running service and write submission.csv.

The upload is gzip-compressed: the 60,000-row train.csv of 109.6 MB is over the service's
100 MiB body limit, 17 MB compressed (level 1, 2.3 s on the Xeon of BENCHMARKS.md; level 6
gives 13 MB in 9.3 s). Kaggle's digit-recognizer.zip and .csv.gz files go as they are.
The accuracy is printed whenever labels are known: a `label` column (the service scores
it), or an answer key `test_labels.csv` (`ImageId,Label`) beside the file.

The batch is followed through its Server-Sent Events (`GET /v1/batches/<id>/events`), not by
polling its status: the progress bar moves with each `progress` event, and the command stops
at `finished` or `failed`. A dropped connection is opened again with `Last-Event-ID`, so the
events resume where they stopped (requests-sse does both, as a browser's EventSource does);
after RECONNECTS drops in a row with no progress between them the command gives up.
"""

from __future__ import annotations

import argparse
import csv as csv_module
import json
import os
import sys
import zlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import requests
from requests_sse import EventSource, InvalidStatusCodeError
from tqdm import tqdm

DEFAULT_URL = "http://127.0.0.1:8000"
EVENTS_TIMEOUT = 60.0  # seconds without a byte after which the events connection is dropped
RECONNECT_WAIT = timedelta(seconds=0.25)  # doubled before each try to reconnect, reset on one
RECONNECTS = 5  # drops in a row, with no progress between them, after which it gives up
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
    """Upload `csv`, follow the batch with a progress bar, save its submission; return it.

    The batch is its status once finished (`GET /v1/batches/<id>`: rows, model_version,
    accuracy when labelled, times). `key` is sent as `Authorization: Bearer <key>` on every
    request when given.
    """
    session = requests.Session()
    if key:
        session.headers["Authorization"] = f"Bearer {key}"
    body, headers = _body(csv)
    accepted = _json(session.post(f"{url}/v1/batches", data=body, headers=headers), 202)
    status_url = url + accepted["status_url"]
    _follow(session, status_url + "/events", accepted["rows"], progress)
    batch = _json(session.get(status_url), 200)
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


def _follow(session: requests.Session, events_url: str, rows: int, progress: bool) -> None:
    """Follow the batch's events until it has finished; raise SubmitError if it failed."""
    drops = Drops()
    source = EventSource(
        events_url,
        session=session,
        reconnection_time=RECONNECT_WAIT,
        timeout=EVENTS_TIMEOUT,
        on_error=drops.count,
    )
    try:
        with source, tqdm(total=rows, unit="row", disable=not progress, file=sys.stderr) as bar:
            for event in source:
                data = json.loads(event.data)
                drops.progress(event.last_event_id, data.get("rows_done"))
                if event.type == "progress":
                    bar.update(data["rows_done"] - bar.n)
                elif event.type == "finished":
                    bar.update(bar.total - bar.n)
                    return
                elif event.type == "failed":
                    raise SubmitError(f"the batch failed: {data.get('error') or 'no message'}")
    except InvalidStatusCodeError as error:
        if error.response is not None:
            _check(error.response, 200)
        raise SubmitError(str(error)) from None
    raise SubmitError(f"{events_url}: the events ended before the batch did")


class Drops:
    """Count dropped event connections; give up after RECONNECTS in a row without progress."""

    def __init__(self) -> None:
        self.in_a_row = 0
        self.seen: tuple[str, int | None] = ("", None)

    def progress(self, event_id: str, rows_done: int | None) -> None:
        """Note an event: a new chunk or more rows done is progress."""
        if rows_done is None:
            rows_done = self.seen[1]
        if (event_id, rows_done) != self.seen:
            self.seen, self.in_a_row = (event_id, rows_done), 0

    def count(self) -> None:
        """Note a drop (requests-sse's on_error); raise SubmitError after too many."""
        self.in_a_row += 1
        if self.in_a_row > RECONNECTS:
            raise SubmitError(f"lost the batch's events {RECONNECTS} times in a row")


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

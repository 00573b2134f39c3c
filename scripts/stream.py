"""`digits stream`: rows on stdin in, one answer per row on stdout as it comes.

    cat test.csv | digits stream --format submission > submission.csv

Three threads: one reads stdin line by line, one checks what has been read and adds it to
the stream (NDJSON lines or Kaggle CSV rows, told apart by the first line), and the main one
follows the answers and writes them. At most `--in-flight` rows are read and not yet
answered, so memory stays flat however long the input. Each input carries the id
`<run>-<row>`, which tells this run's answers from other producers' on the same stream.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import queue
import secrets
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np
import orjson
import requests
from numpy.typing import NDArray
from redis.exceptions import RedisError

from api import pixel_encoding, stream_input
from api.errors import ApiError
from scripts.stream_transport import HttpTransport, RedisTransport, StreamError, Transport
from scripts.submit import DEFAULT_URL

IN_FLIGHT = 1_000  # rows read and not yet answered
SEND_ROWS = 200  # rows per XADD pipeline or POST, at most
FORMATS = ("ndjson", "csv", "submission")
WAKE = 0.2  # seconds between looks at whether every row has its answer


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `stream` subcommand."""
    parser = subparsers.add_parser("stream", help="label stdin rows through a stream, as they come")
    parser.add_argument("name", nargs="?", default="default", help="stream (default: %(default)s)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--url", help=f"the service (default: $DIGITS_URL or {DEFAULT_URL})")
    where.add_argument("--redis", metavar="URL", help="talk to Redis directly instead")
    parser.add_argument("--format", choices=FORMATS, default="ndjson", help="output (ndjson)")
    parser.add_argument("--in-flight", type=int, default=IN_FLIGHT, help="rows unanswered, most")
    parser.add_argument("--key", default=os.environ.get("DIGITS_API_KEY"), help="API key")
    parser.add_argument(
        "--encoding",
        choices=pixel_encoding.ENCODINGS,
        default=pixel_encoding.ENCODINGS[0],
        help="how the pixels are encoded, as ?encoding= of the API (%(default)s)",
    )
    parser.set_defaults(func=stream_command)


def stream_command(args: argparse.Namespace) -> int:
    """Run `digits stream`."""
    transport: Transport
    if args.redis:
        transport = RedisTransport(args.redis, args.name)
    else:
        url = args.url or os.environ.get("DIGITS_URL", DEFAULT_URL)
        transport = HttpTransport(url, args.name, args.key)
    try:
        source, out = sys.stdin.buffer, sys.stdout
        return run(transport, source, out, args.format, args.in_flight, args.encoding)
    except (StreamError, RedisError, requests.RequestException) as error:
        print(f"digits stream: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `digits stream ... | head`: the reader has gone, nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 1


@dataclass
class Run:
    """What the three threads share."""

    slots: threading.Semaphore
    lines: queue.Queue[tuple[int, bytes] | None] = field(default_factory=queue.Queue)
    prefix: str = field(default_factory=lambda: secrets.token_hex(6) + "-")
    given_ids: dict[int, str] = field(default_factory=dict)  # row -> the id the input had
    sent: int = 0  # rows added to the stream
    ended: threading.Event = field(default_factory=threading.Event)  # no more rows will be sent
    done: threading.Event = field(default_factory=threading.Event)  # every answer is written
    error: str | None = None
    encoding: str = pixel_encoding.ENCODINGS[0]  # how the rows' pixels are encoded


def run(
    transport: Transport,
    source: IO[bytes],
    out: IO[str],
    fmt: str,
    in_flight: int,
    encoding: str = pixel_encoding.ENCODINGS[0],
) -> int:
    """Stream `source`'s rows through `transport`, writing answers to `out`; return exit code.

    Rows are checked, and converted to MNIST's encoding, as `POST /v1/streams/NAME/in` does
    with `?encoding=` `encoding`.
    """
    transport.start()
    state = Run(threading.Semaphore(in_flight), encoding=encoding)
    answers: queue.Queue[dict[str, Any]] = queue.Queue()
    threads = [
        threading.Thread(target=_follow, args=(transport, state, answers), daemon=True),
        threading.Thread(target=_read, args=(source, state), daemon=True),
        threading.Thread(target=_send, args=(transport, state), daemon=True),
    ]
    for thread in threads:
        thread.start()
    try:
        failed = _write(answers, state, Writer(out, fmt))
    finally:
        state.done.set()
    if state.error:
        print(f"digits stream: {state.error}", file=sys.stderr)
    if failed:
        print(f"digits stream: {failed} rows got an error instead of a label", file=sys.stderr)
    return 1 if state.error or (failed and fmt == "submission") else 0


def _follow(transport: Transport, state: Run, answers: queue.Queue[dict[str, Any]]) -> None:
    try:
        for answer in transport.answers():
            if state.done.is_set():
                return
            if answer is not None and str(answer.get("id", "")).startswith(state.prefix):
                answers.put(answer)
    except (StreamError, RedisError, requests.RequestException) as error:
        state.error = f"following the answers: {error}"
        state.ended.set()


def _read(source: IO[bytes], state: Run) -> None:
    for row, line in enumerate(source):
        if state.ended.is_set():
            return
        state.slots.acquire()
        state.lines.put((row, line))
    state.lines.put(None)


def _send(transport: Transport, state: Run) -> None:
    header: bytes | None = None
    try:
        while (batch := _take(state.lines)) is not None:
            if header is None and not batch[0][1].lstrip().startswith(b"{"):
                header, batch = batch[0][1], batch[1:]  # a Kaggle CSV: its header comes first
                state.slots.release()
            if batch:
                _add(transport, state, batch, header)
    except (ApiError, StreamError, RedisError, requests.RequestException) as error:
        state.error = getattr(error, "message", None) or str(error)
    finally:
        state.ended.set()


def _take(lines: queue.Queue[tuple[int, bytes] | None]) -> list[tuple[int, bytes]] | None:
    """Wait for a line, then take what else has been read, up to SEND_ROWS; None at the end."""
    first = lines.get()
    if first is None:
        return None
    batch = [first]
    while len(batch) < SEND_ROWS:
        try:
            more = lines.get_nowait()
        except queue.Empty:
            break
        if more is None:
            lines.put(None)
            break
        batch.append(more)
    return batch


def _add(
    transport: Transport, state: Run, batch: list[tuple[int, bytes]], header: bytes | None
) -> None:
    first = state.sent + 1  # rows are numbered from 1, a CSV's header not counted
    taken = len(batch)
    if header is not None:  # Excel's all-empty rows: skipped, as POST /v1/batches does
        batch = [(row, line) for row, line in batch if line.strip(b", \r\n")] or batch[:0]
    text = b"".join(line if line.endswith(b"\n") else line + b"\n" for _, line in batch)
    if not batch:
        blocks: Iterator[stream_input.Block] = iter(())
    elif header is None:
        blocks = stream_input.ndjson_blocks(io.BytesIO(text), batch[0][0] + 1, state.encoding)
    else:
        blocks = stream_input.csv_blocks(io.BytesIO(header + text), first, state.encoding)
    inputs: list[tuple[str, NDArray[np.uint8]]] = []
    for block in blocks:
        for pixels, given in zip(block.pixels, block.ids, strict=True):
            row = first + len(inputs)
            if given is not None:
                state.given_ids[row] = given
            inputs.append((f"{state.prefix}{row}", pixels))
    for _ in range(taken - len(inputs)):  # blank lines: their slots are free again
        state.slots.release()
    transport.add(inputs)
    state.sent += len(inputs)


def _write(answers: queue.Queue[dict[str, Any]], state: Run, writer: Writer) -> int:
    """Write this run's answers until every row sent has one; return how many were errors."""
    answered = failed = 0
    while not (state.ended.is_set() and answered >= state.sent) and not state.done.is_set():
        try:
            answer = answers.get(timeout=WAKE)
        except queue.Empty:
            if state.error and "following" in state.error:
                break
            continue
        row = int(answer["id"][len(state.prefix) :])
        failed += writer.write(row, state.given_ids.pop(row, None), answer)
        answered += 1
        state.slots.release()
    writer.close()
    return failed


class Writer:
    """Write answers as NDJSON, CSV (as they come) or a Kaggle submission (in row order)."""

    def __init__(self, out: IO[str], fmt: str) -> None:
        self.out = out
        self.fmt = fmt
        # submission: (ImageId, label) of rows answered before an earlier one; label -1: error
        self.waiting: dict[int, tuple[str, int]] = {}
        self.next_row = 1
        self.csv = csv.writer(out, lineterminator="\n")
        if fmt == "csv":
            self.csv.writerow(["row", "id", "label", "confidence", "model_version", "error"])
        elif fmt == "submission":
            self.csv.writerow(["ImageId", "Label"])

    def write(self, row: int, given: str | None, answer: dict[str, Any]) -> int:
        """Write one answer; return 1 if it is an error, else 0."""
        error = answer.get("error")
        if self.fmt == "ndjson":
            shown = {k: v for k, v in answer.items() if k != "id"}
            shown = {"row": row, **({"id": given} if given is not None else {}), **shown}
            self.out.write(orjson.dumps(shown).decode() + "\n")
        elif self.fmt == "csv":
            fields = [answer.get(name, "") for name in ("label", "confidence", "model_version")]
            self.csv.writerow([row, given or "", *fields, error or ""])
        else:  # an ImageId column numbers the submission, as POST /v1/batches does
            self.waiting[row] = (given or str(row), -1 if error else answer["label"])
            self._flush_in_order()
        self.out.flush()
        return 1 if error else 0

    def _flush_in_order(self) -> None:
        while self.next_row in self.waiting:
            image_id, label = self.waiting.pop(self.next_row)
            if label >= 0:
                self.csv.writerow([image_id, label])
            self.next_row += 1

    def close(self) -> None:
        """Flush what is left."""
        self.out.flush()

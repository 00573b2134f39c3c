"""Bodies of `POST /v1/streams/NAME/in`: NDJSON or Kaggle CSV, read block by block.

A body may be of any length (chunked transfer is fine), so it is never held whole: lines are
read in blocks of BLOCK_LINES, each block is checked completely and then added to the stream
in one pipeline. A bad line stops the upload with a 422 that names it and says how many lines
before it were added, so the client knows where to resume: nothing is added silently or lost.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
import orjson
from numpy.typing import NDArray
from redis import Redis

from api.errors import ApiError
from formats.kaggle_csv import CSVFormatError, KaggleCSV, parse_kaggle_csv
from store import codec, streams

BLOCK_LINES = 1_000  # lines checked, then added, at a time (about 3 MB of NDJSON)
READ_BYTES = 1 << 16
N_PIXELS = 784
MAX_ID = 256  # characters of a producer's `id`
LINE_HINT = '{"pixels": [784 integers 0-255], "id": "optional text echoed back"}'
ROW = re.compile(r"\brow (\d+)")


@dataclass(frozen=True)
class Block:
    """Checked input lines: pixels `(n, 784)` uint8 and each line's `id` (or None)."""

    first_line: int  # 1-based line (NDJSON) or row (CSV, header not counted) of the first
    pixels: NDArray[np.uint8]
    ids: list[str | None]
    end_line: int  # the line or row after the block's last one: where a resend would start
    unit: str = "line"  # what first_line and end_line count: "line" (NDJSON) or "row" (CSV)


def add(connection: Redis, name: str, blocks: Iterator[Block]) -> dict[str, Any]:
    """Add every block's inputs to stream `name`: {"first_id", "last_id", "count"}.

    A bad line raises ApiError saying how many lines before it were added, and their ids.
    """
    first_id: str | None = None
    last_id: str | None = None
    count, resume = 0, None
    try:
        for block in blocks:
            pipe = connection.pipeline(transaction=False)
            for pixels, client_id in zip(block.pixels, block.ids, strict=True):
                fields = {"pixels": pixels.tobytes()}
                streams.add(pipe, name, fields if client_id is None else fields | {"id": client_id})
            added = [codec.text(entry_id) for entry_id in pipe.execute()]
            first_id, last_id, count = first_id or added[0], added[-1], count + len(added)
            resume = (block.unit, block.end_line)
    except ApiError as error:
        if count and resume is not None:
            unit, end = resume
            error.message += (
                f"; the {count} inputs before {unit} {end} were added (entry ids {first_id} to "
                f"{last_id}), none from {unit} {end} on: send the body again from {unit} {end}"
            )
        raise ApiError(error.status, error.code, error.message) from None
    if not count:
        raise ApiError(422, "empty", "the body has no input lines")
    return {"first_id": first_id, "last_id": last_id, "count": count}


def lines(stream: IO[bytes]) -> Iterator[list[bytes]]:
    """Yield the body's lines in blocks of at most BLOCK_LINES, without their line breaks."""
    pending, block = b"", []
    while chunk := stream.read(READ_BYTES):
        parts = (pending + chunk).split(b"\n")
        pending = parts.pop()
        block += parts
        while len(block) >= BLOCK_LINES:
            yield block[:BLOCK_LINES]
            block = block[BLOCK_LINES:]
    if pending:
        block.append(pending)
    if block:
        yield block


def ndjson_blocks(stream: IO[bytes], first_line: int = 1) -> Iterator[Block]:
    """Yield checked blocks of an NDJSON body; raise ApiError at the first bad line."""
    number = first_line
    for block in lines(stream):
        rows = [(number + i, line) for i, line in enumerate(block) if line.strip()]
        number += len(block)
        if rows:
            yield _ndjson_block(rows, number)


def _ndjson_block(rows: list[tuple[int, bytes]], end_line: int) -> Block:
    images, ids = [], []
    for number, line in rows:
        document = _json_line(number, line)
        images.append(document["pixels"])
        ids.append(document.get("id"))
    try:
        array = np.asarray(images)
    except (ValueError, OverflowError):
        array = np.zeros((0, 0))
    if not (array.ndim == 2 and array.shape[1] == N_PIXELS and array.dtype.kind in "iu"):
        raise _line_error(*_first_bad(rows, images))
    if array.min() < 0 or array.max() > 255:
        raise _line_error(*_first_bad(rows, images))
    return Block(rows[0][0], array.astype(np.uint8), ids, end_line)


def _json_line(number: int, line: bytes) -> dict[str, Any]:
    try:
        document = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        message = f"not valid JSON ({error}): send one {LINE_HINT} per line"
        raise _line_error(number, message) from None
    if not isinstance(document, dict) or "pixels" not in document:
        raise _line_error(number, f"expected a JSON object {LINE_HINT}")
    unexpected = sorted(document.keys() - {"pixels", "id"})
    if unexpected:
        raise _line_error(number, f"unexpected field {unexpected[0]!r}: expected {LINE_HINT}")
    client_id = document.get("id")
    if client_id is not None and not (isinstance(client_id, str) and len(client_id) <= MAX_ID):
        raise _line_error(number, f"id must be a string of at most {MAX_ID} characters")
    return document


def _first_bad(rows: list[tuple[int, bytes]], images: list[Any]) -> tuple[int, str]:
    for (number, _), image in zip(rows, images, strict=True):
        if not isinstance(image, list) or len(image) != N_PIXELS:
            size = len(image) if isinstance(image, list) else "no list of"
            return number, f"pixels has {size} values, expected {N_PIXELS} integers 0-255"
        for position, value in enumerate(image):
            if type(value) is not int or not 0 <= value <= 255:
                shown = orjson.dumps(value).decode()[:40]
                return number, f"pixels[{position}] is {shown}, expected an integer 0-255"
    return rows[0][0], f"expected {LINE_HINT}"


def csv_blocks(stream: IO[bytes], first_row: int = 1) -> Iterator[Block]:
    """Yield checked blocks of a Kaggle CSV body (header first); raise ApiError at a bad row.

    Rows are numbered from `first_row`, the header not counted.
    """
    header: bytes | None = None
    found = False
    for block in lines(stream):
        if header is None:
            header, block = block[0] + b"\n", block[1:]
        if not any(line.strip(b", \r") for line in block):  # Excel's all-empty rows only
            first_row += len(block)
            continue
        parsed = _csv_block(header + b"\n".join(block), first_row)
        ids: list[str | None] = [None] * len(parsed.pixels)
        if parsed.image_ids is not None:  # an ImageId column: echoed as each answer's id
            ids = [str(image_id) for image_id in parsed.image_ids]
        end = first_row + len(block)  # all-empty rows are skipped, but they are rows
        if len(parsed.pixels):
            found = True
            yield Block(first_row, parsed.pixels, ids, end, "row")
        first_row = end
    if header is None or not found:
        raise ApiError(422, "empty", "no data rows: send a Kaggle CSV with a header and rows")


def _csv_block(text: bytes, first_row: int) -> KaggleCSV:
    try:
        parsed = parse_kaggle_csv(text)
    except CSVFormatError as error:
        # The reader counts rows from the block's start; say where they are in the body.
        message = ROW.sub(lambda found: f"row {int(found[1]) + first_row - 1}", str(error), 1)
        raise ApiError(422, error.code, message) from None
    return parsed


def _line_error(number: int, message: str) -> ApiError:
    return ApiError(422, "invalid_line", f"line {number}: {message}")

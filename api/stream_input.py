"""Bodies of `POST /v1/streams/NAME/in`: NDJSON or Kaggle CSV, read block by block.

A body may be of any length (chunked transfer is fine), so it is never held whole: lines are
read in blocks of BLOCK_LINES, each block is checked completely and then added to the stream
in one pipeline. A bad line stops the upload with a 422 that names it and says how many lines
before it were added, so the client knows where to resume: nothing is added silently or lost.
The checks are those of the other routes, not a copy: a line's `pixels` go through
`api.payload` as `POST /v1/predict`'s do, CSV rows through the Kaggle reader as a batch's, and
both through `api.pixel_encoding` with the same `?encoding=`.
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

from api import payload, pixel_encoding
from api.errors import ApiError
from formats.kaggle_csv import CSVFormatError, KaggleCSV, parse_kaggle_csv
from store import codec, streams

BLOCK_LINES = 1_000  # lines checked, then added, at a time (about 3 MB of NDJSON)
READ_BYTES = 1 << 16
MAX_ID = 256  # characters of a producer's `id`
LINE_HINT = '{"pixels": [784 integers 0-255], "id": "optional text echoed back"}'
ONE_PER_LINE = "send one image per line"
EMPTY_ROW = b' ,"\r'  # a CSV row of only these is all-empty (Excel's ,,,): skipped
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


def ndjson_blocks(
    stream: IO[bytes], first_line: int = 1, encoding: str = pixel_encoding.ENCODINGS[0]
) -> Iterator[Block]:
    """Yield checked blocks of an NDJSON body; raise ApiError at the first bad line.

    `encoding` is a `?encoding=` value (`api.pixel_encoding`): how the pixels are encoded.
    """
    number = first_line
    for block in lines(stream):
        rows = [(number + i, line) for i, line in enumerate(block) if line.strip()]
        number += len(block)
        if rows:
            yield _ndjson_block(rows, number, encoding)


def _ndjson_block(rows: list[tuple[int, bytes]], end_line: int, encoding: str) -> Block:
    documents = [_json_line(number, line) for number, line in rows]
    values = [document["pixels"] for document in documents]
    try:  # the whole block at once; a line that fails, or lines of mixed shapes, one by one
        pixels = payload.pixel_values(values, b"\n".join(line for _, line in rows))
    except ApiError:
        checked = zip(rows, values, strict=True)
        pixels = np.concatenate([_line_pixels(*row, value) for row, value in checked])
    pixels = pixel_encoding.apply(pixels, encoding, lambda index: f"line {rows[index][0]}")
    ids = [document.get("id") for document in documents]
    return Block(rows[0][0], pixels, ids, end_line)


def _line_pixels(number: int, line: bytes, value: Any) -> NDArray[np.uint8]:
    """One line's pixels `(1, 784)`, checked as POST /v1/predict checks {"pixels": value}."""
    try:
        return payload.pixel_values([value], line, several=ONE_PER_LINE)
    except ApiError as error:
        raise _line_error(number, error.message) from None


def _json_line(number: int, line: bytes) -> dict[str, Any]:
    try:
        document = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        message = f"not valid JSON ({error}): send one {LINE_HINT} per line"
        raise _line_error(number, message) from None
    try:
        payload.refuse_pictures(document)
    except ApiError as error:
        raise _line_error(number, error.message) from None
    if not isinstance(document, dict) or "pixels" not in document:
        raise _line_error(number, f"expected a JSON object {LINE_HINT}")
    unexpected = sorted(document.keys() - {"pixels", "id"})
    if unexpected:
        raise _line_error(number, f"unexpected field {unexpected[0]!r}: expected {LINE_HINT}")
    client_id = document.get("id")
    if client_id is not None and not (isinstance(client_id, str) and len(client_id) <= MAX_ID):
        raise _line_error(number, f"id must be a string of at most {MAX_ID} characters")
    return document


def csv_blocks(
    stream: IO[bytes], first_row: int = 1, encoding: str = pixel_encoding.ENCODINGS[0]
) -> Iterator[Block]:
    """Yield checked blocks of a Kaggle CSV body (header first); raise ApiError at a bad row.

    Rows are numbered from `first_row`, the header not counted. `encoding` is a `?encoding=`
    value (`api.pixel_encoding`).
    """
    header: bytes | None = None
    found = False
    for block in lines(stream):
        if header is None:
            header, block = block[0] + b"\n", block[1:]
        rows = [first_row + n for n, line in enumerate(block) if line.strip(EMPTY_ROW)]
        end = first_row + len(block)  # all-empty rows are skipped, but they are rows
        parsed = _csv_block(header + b"\n".join(block), first_row) if rows else None
        if parsed is not None and len(parsed.pixels):
            found = True
            yield _csv_rows(parsed, rows, end, encoding)
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


def _csv_rows(parsed: KaggleCSV, rows: list[int], end: int, encoding: str) -> Block:
    """The block of a parsed CSV block whose data rows are `rows`, checked for `encoding`."""

    def row_name(index: int) -> str:
        image_id = "" if parsed.image_ids is None else f" (ImageId {parsed.image_ids[index]})"
        return f"row {rows[index]}{image_id}"

    pixels = pixel_encoding.apply(parsed.pixels, encoding, row_name)
    ids: list[str | None] = [None] * len(pixels)
    if parsed.image_ids is not None:  # an ImageId column: echoed as each answer's id
        ids = [str(image_id) for image_id in parsed.image_ids]
    return Block(rows[0], pixels, ids, end, "row")


def _line_error(number: int, message: str) -> ApiError:
    return ApiError(422, "invalid_line", f"line {number}: {message}")

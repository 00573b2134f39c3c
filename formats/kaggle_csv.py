"""Kaggle digit-recognizer CSV files: `label,pixel0..pixel783` (train) or `pixel0..pixel783`.

Reading is strict and fast. The fast path checks and converts the whole text with a few
NumPy passes per chunk of rows; only when a chunk fails does a per-row Python pass look for
the first bad row and cell, so errors name the row (1-based, header not counted) and column.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np
from numpy.typing import NDArray

PIXELS = 784
PIXEL_NAMES = [f"pixel{i}" for i in range(PIXELS)]
PARSE_CHUNK_ROWS = 1024  # ~1.6 MB of text: big enough for NumPy, small enough for the cache
WRITE_CHUNK_ROWS = 4096
COMMA, NEWLINE, ZERO = ord(","), ord("\n"), ord("0")
BOM = b"\xef\xbb\xbf"
# Files people upload by mistake, recognised by their first bytes.
SIGNATURES = {
    b"\xff\xfe": "UTF-16 text; save it as UTF-8",
    b"\xfe\xff": "UTF-16 text; save it as UTF-8",
    b"PK\x03\x04": "a zip archive; extract the CSV from it first",
    b"\x1f\x8b": "gzip-compressed; decompress it first",
}
HEADER_HELP = "expected label,pixel0,...,pixel783 or pixel0,...,pixel783"


class CSVFormatError(ValueError):
    """A Kaggle CSV is malformed; `code` names the problem, `row` and `column` where it is."""

    def __init__(
        self, code: str, message: str, *, row: int | None = None, column: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.row = row
        self.column = column


def read_kaggle_csv(
    source: str | Path | bytes | BinaryIO, *, max_rows: int | None = None
) -> tuple[NDArray[np.uint8], NDArray[np.int64] | None]:
    """Parse a Kaggle CSV into pixels (n, 784) uint8 and labels (n,) int64, or None without."""
    text = _read_bytes(source)
    for signature, problem in SIGNATURES.items():
        if text.startswith(signature):
            raise CSVFormatError("bad_encoding", f"the file is {problem}")
    if b"\r" in text:
        text = text.replace(b"\r\n", b"\n")
    start, end = len(BOM) if text.startswith(BOM) else 0, _content_end(text)
    if end <= start:
        raise CSVFormatError("empty", "the file is empty")
    header_end = text.find(b"\n", start, end) % (end + 1)  # `end` when there is no newline
    names = _check_header(_decode_header(text[start:header_end]))
    if header_end == end:
        raise CSVFormatError("empty", "no data rows: the file has a header but nothing below it")
    rows = text.count(b"\n", header_end + 1, end) + 1
    if max_rows is not None and rows > max_rows:
        raise CSVFormatError(
            "too_many_rows", f"{rows:,} rows is more than the limit of {max_rows:,}"
        )
    return _parse_body(memoryview(text)[header_end + 1 : end], names)


def _read_bytes(source: str | Path | bytes | BinaryIO) -> bytes:
    if isinstance(source, bytes):
        return source
    if isinstance(source, str | Path):
        return Path(source).read_bytes()
    return source.read()


def _content_end(text: bytes) -> int:
    """Return the length of the text without trailing whitespace, copying only its tail."""
    tail = text[-64:]
    kept = tail.rstrip()
    if not kept and len(tail) < len(text):
        return len(text.rstrip())
    return len(text) - len(tail) + len(kept)


def _decode_header(header: bytes) -> str:
    if b"\0" in header:
        raise CSVFormatError(
            "bad_encoding", "the file contains NUL bytes (UTF-16 or binary?); save it as UTF-8 text"
        )
    if b"\r" in header:
        raise CSVFormatError(
            "bad_line_endings", "lines end with a bare CR (old Mac format); use LF or CRLF"
        )
    try:
        return header.decode("utf-8")
    except UnicodeDecodeError as error:
        raise CSVFormatError(
            "bad_encoding",
            f"the first line is not UTF-8 text (byte 0x{header[error.start]:02x} at position "
            f"{error.start}); expected a CSV file",
        ) from None


def _check_header(header: str) -> list[str]:
    """Return the column names, checked against Kaggle's."""
    if "," not in header and (";" in header or "\t" in header):
        found = "semicolons" if ";" in header else "tabs"
        raise CSVFormatError("bad_delimiter", f"the header is separated by {found}; use commas")
    names = [name.strip('"') for name in header.split(",")]
    expected = ["label", *PIXEL_NAMES] if names[0] == "label" else PIXEL_NAMES
    if names == expected:
        return names
    if all(name.strip().isdigit() for name in names):
        raise CSVFormatError(
            "bad_header", f"the first line holds numbers, not a header; {HEADER_HELP}"
        )
    for position, (name, wanted) in enumerate(zip(names, expected, strict=False), start=1):
        if name != wanted:
            text = f"header column {position} is {name[:40]!r}, expected {wanted!r}"
            raise CSVFormatError("bad_header", text, column=name[:40])
    if len(names) < len(expected):
        missing = expected[len(names)]
        text = f"the header ends before column {len(names) + 1} {missing!r}; {HEADER_HELP}"
        raise CSVFormatError("bad_header", text, column=missing)
    extra = names[len(expected)][:40]
    text = f"header column {len(expected) + 1} {extra!r} is one too many; {HEADER_HELP}"
    raise CSVFormatError("bad_header", text, column=extra)


def _parse_body(
    body: memoryview, names: list[str]
) -> tuple[NDArray[np.uint8], NDArray[np.int64] | None]:
    """Convert the data rows (no final newline) to pixels and labels; raise on the first bad row."""
    data = np.frombuffer(body, np.uint8)
    line_ends = np.append(np.flatnonzero(data == NEWLINE), len(data))
    values = np.empty((len(line_ends), len(names)), np.uint8)
    top = np.full(len(names), 255, np.uint16)
    top[0] = 9 if names[0] == "label" else 255
    start = 0
    for first in range(0, len(line_ends), PARSE_CHUNK_ROWS):
        chunk_ends = line_ends[first : first + PARSE_CHUNK_ROWS]
        stop = int(chunk_ends[-1]) + 1
        # Every line must end with a newline; only the last chunk needs one added (a copy).
        lines = (
            data[start:stop] if stop <= len(data) else np.append(data[start:], np.uint8(NEWLINE))
        )
        parsed = _parse_chunk(lines, chunk_ends - start, len(names))
        if parsed is None or np.any(parsed > top):
            raise _diagnose(lines.tobytes(), names, first_row=first + 1)
        values[first : first + len(chunk_ends)] = parsed
        start = stop
    if names[0] != "label":
        return values, None
    return np.ascontiguousarray(values[:, 1:]), values[:, 0].astype(np.int64)


def _parse_chunk(
    data: NDArray[np.uint8], line_ends: NDArray[np.intp], columns: int
) -> NDArray[np.uint16] | None:
    """Parse whole lines of 1-3 digit values into (rows, columns), or None if malformed."""
    digits = data - ZERO  # separators and any other byte wrap to values >= 10
    is_digit = digits < 10
    ends = np.flatnonzero(~is_digit)  # the comma or newline after each value
    rows = len(line_ends)
    if len(ends) != rows * columns or np.count_nonzero(data == COMMA) != rows * (columns - 1):
        return None
    grid = ends.reshape(rows, columns)
    if not np.array_equal(grid[:, -1], line_ends):
        return None
    is_separator = ~is_digit
    if is_separator[0] or np.any(is_separator[1:] & is_separator[:-1]):
        return None  # an empty value
    four = is_digit[3:] & is_digit[2:-1]
    four &= is_digit[1:-2]
    four &= is_digit[:-3]
    if four.any():
        return None  # more than three digits
    # At each separator, the value of the (up to three) digits before it; a digit two places
    # back only counts if the one in between is a digit too.
    digits *= is_digit
    value = np.zeros(len(data), np.uint16)
    value[1:] = digits[:-1]
    value[2:] += digits[:-2] * np.uint16(10)
    value[3:] += (digits[:-3] * is_digit[1:-2]) * np.uint16(100)
    return value[grid]


def _diagnose(lines: bytes, names: list[str], first_row: int) -> CSVFormatError:
    """Find the first bad row of a chunk the fast path rejected, and say what is wrong."""
    for row, line in enumerate(lines.split(b"\n")[:-1], start=first_row):
        cells = line.split(b",")
        if len(cells) != len(names):
            return _count_error(line, len(cells), len(names), row)
        for name, cell in zip(names, cells, strict=True):
            problem = _cell_problem(cell, name)
            if problem:
                code, text = problem
                return CSVFormatError(
                    code, f"row {row}, column {name}: {text}", row=row, column=name
                )
    raise AssertionError("the fast CSV path rejected rows that the row-by-row check accepts")


def _count_error(line: bytes, found: int, expected: int, row: int) -> CSVFormatError:
    if found == 1 and (b";" in line or b"\t" in line):
        found_sep = "semicolons" if b";" in line else "tabs"
        text = f"row {row} is separated by {found_sep}; use commas"
        return CSVFormatError("bad_delimiter", text, row=row)
    if not line.strip():
        text = f"row {row} is blank; expected {expected} values"
    else:
        text = f"row {row} has {found} values, expected {expected}"
    return CSVFormatError("wrong_column_count", text, row=row)


def _cell_problem(cell: bytes, name: str) -> tuple[str, str] | None:
    """Return (code, explanation) if a cell is not a valid value for its column."""
    wanted, top = ("a digit 0-9", 9) if name == "label" else ("an integer 0-255", 255)
    shown = repr(cell[:20])[1:]  # quoted, with non-ASCII bytes escaped
    if not cell.strip():
        return "not_integer", f"empty value, expected {wanted}"
    try:
        number = int(cell)
    except ValueError:
        return "not_integer", f"{shown} is not {wanted}"
    if not 0 <= number <= top:
        if name == "label":
            return "bad_label", f"{number} is not a digit 0-9"
        return "out_of_range", f"value {number} is outside 0-255"
    if not (cell.isdigit() and len(cell) <= 3):
        return "not_integer", f"{shown} must be written as plain digits, like {number}"
    return None


def write_kaggle_csv(
    path: str | Path, pixels: NDArray[np.uint8], labels: NDArray[np.integer] | None = None
) -> None:
    """Write pixels (n, 784) uint8, with an optional first `label` column, in Kaggle's format."""
    pixels = np.asarray(pixels)
    if pixels.ndim != 2 or pixels.shape[1] != PIXELS or pixels.dtype != np.uint8:
        raise ValueError(f"pixels must be uint8 (n, {PIXELS}), got {pixels.dtype} {pixels.shape}")
    names = PIXEL_NAMES
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (len(pixels),) or not np.isin(labels, np.arange(10)).all():
            raise ValueError("labels must be one digit 0-9 per row")
        names = ["label", *PIXEL_NAMES]
        pixels = np.column_stack([labels.astype(np.uint8), pixels])
    with open(path, "wb") as stream:
        stream.write((",".join(names) + "\n").encode())
        for start in range(0, len(pixels), WRITE_CHUNK_ROWS):
            stream.write(_format_rows(pixels[start : start + WRITE_CHUNK_ROWS]))


def _digit_table(separator: bytes) -> NDArray[np.uint8]:
    """Each value 0..255 as its digits and a separator, NUL-padded to 4 bytes."""
    table = np.zeros((256, 4), np.uint8)
    for value in range(256):
        text = str(value).encode() + separator
        table[value, : len(text)] = np.frombuffer(text, np.uint8)
    return table


# Formatting a whole block is then one gather, and dropping the NUL padding one mask.
_CELLS = _digit_table(b",")
_LAST_CELLS = _digit_table(b"\n")


def _format_rows(values: NDArray[np.uint8]) -> bytes:
    cells = _CELLS[values]  # (rows, columns, 4)
    cells[:, -1] = _LAST_CELLS[values[:, -1]]
    text = cells.reshape(-1)
    return text[text != 0].tobytes()

"""Kaggle digit-recognizer CSV files: `label,pixel0..pixel783` (train) or `pixel0..pixel783`.

Reading is fast for the files Kaggle ships, forgiving where the meaning of a file is certain
and strict where it is not. The fast path checks and converts the whole text with a few NumPy
passes per chunk of rows. A chunk it rejects gets a second, still vectorised, pass that undoes
what spreadsheets and pandas add without changing a value (RFC 4180 quotes, integral floats
like `12.0`, all-empty rows like Excel's `,,,`); only when that fails too does a per-row Python
pass find the first bad row and cell, so errors name the row (1-based, header not counted) and
column. Also accepted: gzip or zip files (formats.compressed), a UTF-8 BOM, CRLF, Excel's
`sep=,` first line, a leading pandas index column (an empty or `Unnamed: 0` header, ignored)
and a leading `ImageId` column (kept: it numbers the submission). Refused, because any reading
would be a guess: other delimiters, a missing header, values that are not integers 0-255
(0-1 floats among them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from numpy.typing import NDArray

from formats import compressed
from formats.mnist import N_PIXELS as PIXELS

PIXEL_NAMES = [f"pixel{i}" for i in range(PIXELS)]
PARSE_CHUNK_ROWS = 1024  # ~1.6 MB of text: big enough for NumPy, small enough for the cache
WRITE_CHUNK_ROWS = 4096
COMMA, NEWLINE, ZERO, QUOTE, DOT, SPACE = (ord(c) for c in ',\n0". ')
BOM = b"\xef\xbb\xbf"
# The longest row a file people really save holds: 785 values written as pandas writes floats
# with every field quoted (`"255.0",`: 8 bytes, 6,280 for the values) and a leading index or
# ImageId of up to 9 digits, quoted, rounded up. With room for a header, it bounds the
# uncompressed size of a file of `max_rows` rows (text_limit); a plain Kaggle row is <= 3,150.
ROW_BYTES = 6_400
HEADER_BYTES = 65_536
INDEX_NAMES = {"", "Unnamed: 0"}  # pandas' to_csv index column: no name, or as read back
IMAGE_ID = "ImageId"
SHORT_FIELD = 16  # bytes between quotes up to which fields are checked byte by byte
# Files people upload by mistake, recognised by their first bytes.
SIGNATURES = {
    b"\xff\xfe": "UTF-16 text; save it as UTF-8",
    b"\xfe\xff": "UTF-16 text; save it as UTF-8",
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


@dataclass(frozen=True)
class KaggleCSV:
    """A parsed file: pixels (n, 784) uint8; labels and image ids (n,) int64, or None."""

    pixels: NDArray[np.uint8]
    labels: NDArray[np.int64] | None
    image_ids: NDArray[np.int64] | None  # from an ImageId column; None: 1..n in file order
    skipped_rows: int  # all-empty rows left out


@dataclass(frozen=True)
class _Columns:
    """The header: the Kaggle column names, and what a leading extra column holds."""

    names: list[str]
    lead: str | None  # None, "index" (ignored) or "image_id"


def text_limit(max_rows: int) -> int:
    """Return the most uncompressed bytes a file of `max_rows` rows can need."""
    return HEADER_BYTES + max_rows * ROW_BYTES


def read_kaggle_csv(
    source: str | Path | bytes | BinaryIO, *, max_rows: int | None = None
) -> tuple[NDArray[np.uint8], NDArray[np.int64] | None]:
    """Parse a Kaggle CSV into pixels (n, 784) uint8 and labels (n,) int64, or None without."""
    parsed = parse_kaggle_csv(source, max_rows=max_rows)
    return parsed.pixels, parsed.labels


def parse_kaggle_csv(
    source: str | Path | bytes | BinaryIO, *, max_rows: int | None = None
) -> KaggleCSV:
    """Parse a Kaggle CSV, plain, gzip or zip; raise CSVFormatError saying what is wrong.

    `max_rows` limits the data rows (`too_many_rows`) and, through text_limit, the bytes a
    compressed file may expand to (`too_large`).
    """
    limit = None if max_rows is None else text_limit(max_rows)
    try:
        text = compressed.unpack(_read_bytes(source), limit)
    except compressed.ArchiveError as error:
        raise CSVFormatError(error.code, str(error)) from None
    for signature, problem in SIGNATURES.items():
        if text.startswith(signature):
            raise CSVFormatError("bad_encoding", f"the file is {problem}")
    if b"\r" in text:
        text = text.replace(b"\r\n", b"\n")
    start, end = len(BOM) if text.startswith(BOM) else 0, _content_end(text)
    start = _skip_separator_line(text, start, end)
    if end <= start:
        raise CSVFormatError("empty", "the file is empty")
    header_end = text.find(b"\n", start, end) % (end + 1)  # `end` when there is no newline
    columns = _check_header(_decode_header(text[start:header_end]))
    if header_end == end:
        raise CSVFormatError("empty", "no data rows: the file has a header but nothing below it")
    decorated = text.find(b'"', header_end, end) >= 0 or text.find(b".", header_end, end) >= 0
    parsed = _parse_body(memoryview(text)[header_end + 1 : end], columns, decorated)
    if max_rows is not None and len(parsed.pixels) > max_rows:
        raise CSVFormatError(
            "too_many_rows", f"{len(parsed.pixels):,} rows is more than the limit of {max_rows:,}"
        )
    return parsed


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


def _skip_separator_line(text: bytes, start: int, end: int) -> int:
    """Return where the header starts: after Excel's `sep=,` line, if there is one."""
    if text[start : start + 4].lower() != b"sep=":
        return start
    line_end = text.find(b"\n", start, end) % (end + 1)
    separator = text[start + 4 : line_end].strip().strip(b'"')
    if separator != b",":
        shown = separator.decode("utf-8", "replace")[:10]
        raise CSVFormatError(
            "bad_delimiter", f"the first line declares sep={shown}; use commas (sep=,)"
        )
    return min(line_end + 1, end)


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


def _check_header(header: str) -> _Columns:
    """Return the column names, checked against Kaggle's, and the kind of leading column."""
    if "," not in header and (";" in header or "\t" in header):
        found = "semicolons" if ";" in header else "tabs"
        raise CSVFormatError("bad_delimiter", f"the header is separated by {found}; use commas")
    names = [name.strip('"') for name in header.split(",")]
    lead = "index" if names[0] in INDEX_NAMES else "image_id" if names[0] == IMAGE_ID else None
    given = names[1:] if lead else names
    expected = ["label", *PIXEL_NAMES] if given[:1] == ["label"] else PIXEL_NAMES
    if given == expected:
        return _Columns(names, lead)
    if all(name.strip().isdigit() for name in names):
        raise CSVFormatError(
            "bad_header", f"the first line holds numbers, not a header; {HEADER_HELP}"
        )
    skipped = 1 if lead else 0
    for position, (name, wanted) in enumerate(zip(given, expected, strict=False), start=1):
        if name != wanted:
            text = f"header column {position + skipped} is {name[:40]!r}, expected {wanted!r}"
            raise CSVFormatError("bad_header", text, column=name[:40])
    if len(given) < len(expected):
        missing = expected[len(given)]
        text = f"the header ends before column {len(names) + 1} {missing!r}; {HEADER_HELP}"
        raise CSVFormatError("bad_header", text, column=missing)
    extra = given[len(expected)][:40]
    text = f"header column {len(names)} {extra!r} is one too many; {HEADER_HELP}"
    raise CSVFormatError("bad_header", text, column=extra)


def _parse_body(body: memoryview, columns: _Columns, decorated: bool) -> KaggleCSV:
    """Convert the data rows (no final newline) to pixels and labels; raise on the first bad row."""
    data = np.frombuffer(body, np.uint8)
    line_ends = np.append(np.flatnonzero(data == NEWLINE), len(data))
    names = columns.names[1:] if columns.lead else columns.names
    values = np.empty((len(line_ends), len(names)), np.uint8)
    image_ids: list[NDArray[np.int64]] = []
    top = np.full(len(names), 255, np.uint16)
    top[0] = 9 if names[0] == "label" else 255
    start = filled = 0
    for first in range(0, len(line_ends), PARSE_CHUNK_ROWS):
        chunk_ends = line_ends[first : first + PARSE_CHUNK_ROWS]
        stop = int(chunk_ends[-1]) + 1
        # Every line must end with a newline; only the last chunk needs one added (a copy).
        lines = (
            data[start:stop] if stop <= len(data) else np.append(data[start:], np.uint8(NEWLINE))
        )
        parsed = _parse_any(lines, chunk_ends - start, len(names), columns.lead, decorated)
        if parsed is None or np.any(parsed[0] > top):
            raise _diagnose(lines.tobytes(), columns, first_row=first + 1)
        chunk_values, ids = parsed
        values[filled : filled + len(chunk_values)] = chunk_values
        filled += len(chunk_values)
        if ids is not None:
            image_ids.append(ids)
        start = stop
    values = values[:filled]
    if not filled:
        raise CSVFormatError("empty", "no data rows: every row below the header is empty")
    labels = values[:, 0].astype(np.int64) if names[0] == "label" else None
    pixels = np.ascontiguousarray(values[:, 1:]) if names[0] == "label" else values
    ids_found = np.concatenate(image_ids) if columns.lead == "image_id" else None
    return KaggleCSV(pixels, labels, ids_found, len(line_ends) - filled)


def _parse_any(
    lines: NDArray[np.uint8],
    line_ends: NDArray[np.intp],
    columns: int,
    lead: str | None,
    decorated: bool,
) -> tuple[NDArray[np.uint16], NDArray[np.int64] | None] | None:
    """Parse a chunk as Kaggle writes it, else forgiven; `decorated`: forgiven first.

    A file with quotes or dots would fail the Kaggle-format path in every chunk.
    """
    forgiven = _forgive(lines) if decorated else None
    if forgiven is not None:
        return _parse_lines(forgiven, _line_ends(forgiven), columns, lead)
    parsed = _parse_lines(lines, line_ends, columns, lead)
    if parsed is None and not decorated:
        forgiven = _forgive(lines)  # all-empty rows
        if forgiven is not None:
            return _parse_lines(forgiven, _line_ends(forgiven), columns, lead)
    return parsed


def _line_ends(lines: NDArray[np.uint8]) -> NDArray[np.intp]:
    return np.flatnonzero(lines == NEWLINE)


def _parse_lines(
    lines: NDArray[np.uint8], line_ends: NDArray[np.intp], columns: int, lead: str | None
) -> tuple[NDArray[np.uint16], NDArray[np.int64] | None] | None:
    """Parse whole lines, after any leading id column; None if they are malformed."""
    if not len(line_ends):
        return np.empty((0, columns), np.uint16), np.empty(0, np.int64)
    ids = None
    if lead:
        split = _split_lead(lines, line_ends, lead == "image_id")
        if split is None:
            return None
        lines, ids = split
        line_ends = _line_ends(lines)
    values = _parse_chunk(lines, line_ends, columns)
    return None if values is None else (values, ids)


def _split_lead(
    lines: NDArray[np.uint8], line_ends: NDArray[np.intp], read_ids: bool
) -> tuple[NDArray[np.uint8], NDArray[np.int64] | None] | None:
    """Cut the first field off every line; read it as an ImageId (a positive integer)."""
    starts = np.concatenate(([0], line_ends[:-1] + 1))
    commas = np.flatnonzero(lines == COMMA)
    firsts = commas[np.minimum(np.searchsorted(commas, starts), len(commas) - 1)]
    if not len(commas) or np.any(firsts < starts) or np.any(firsts > line_ends):
        return None
    ids = None
    if read_ids:
        text = lines.tobytes()
        fields = [text[a:b] for a, b in zip(starts.tolist(), firsts.tolist(), strict=True)]
        if not all(field.isdigit() and len(field) <= 18 for field in fields):
            return None
        ids = np.array([int(field) for field in fields], np.int64)
        if np.any(ids < 1):
            return None
    return lines[~_ranges(len(lines), starts, firsts + 1)], ids


def _ranges(size: int, starts: NDArray[np.intp], stops: NDArray[np.intp]) -> NDArray[np.bool_]:
    """A mask of `size` that is True inside every [start, stop) range (ranges do not overlap).

    Work in proportion to the bytes covered, not to `size`: a running sum over a whole chunk
    costs as much as parsing it.
    """
    lengths = stops - starts
    before = np.cumsum(lengths) - lengths  # covered bytes in the earlier ranges
    positions = np.repeat(starts - before, lengths) + np.arange(int(lengths.sum()))
    mask = np.zeros(size, bool)
    mask[positions] = True
    return mask


def _forgive(lines: NDArray[np.uint8]) -> NDArray[np.uint8] | None:
    """Drop all-empty rows, RFC 4180 quotes and the `.0` of integral floats; None if none apply.

    Quotes must enclose whole fields, and a dot must follow a digit and be followed by zeros
    only, up to the field's end; anything else is left for the row-by-row check to name.
    """
    line_ends = _line_ends(lines)
    starts = np.concatenate(([0], line_ends[:-1] + 1))
    blank = (lines == COMMA) | (lines == QUOTE) | (lines == SPACE) | (lines == NEWLINE)
    empty = np.logical_and.reduceat(blank, starts)  # no line is empty: each has its newline
    kept = (
        lines[~_ranges(len(lines), starts[empty], line_ends[empty] + 1)] if empty.any() else lines
    )
    quotes = np.flatnonzero(kept == QUOTE)
    dots = np.flatnonzero(kept == DOT)
    if not (empty.any() or len(quotes) or len(dots)):
        return None
    if len(quotes):
        unquoted = _all_fields_quoted(kept)
        if unquoted is None:
            if not _quotes_enclose_fields(kept, quotes):
                return None
            unquoted = kept[kept != QUOTE]
        kept = unquoted
        dots = np.flatnonzero(kept == DOT)
    if len(dots):
        return _without_integral_fractions(kept, dots)
    return kept


def _separators(data: NDArray[np.uint8]) -> NDArray[np.intp]:
    return np.flatnonzero((data == COMMA) | (data == NEWLINE))


def _all_fields_quoted(kept: NDArray[np.uint8]) -> NDArray[np.uint8] | None:
    """The lines without their quotes if every field is quoted (csv.QUOTE_ALL), else None."""
    text = kept.tobytes().replace(b'","', b",").replace(b'"\n"', b"\n")
    if not (text.startswith(b'"') and text.endswith(b'"\n') and text.count(b'"') == 2):
        return None
    return np.frombuffer(text[1:-2] + b"\n", np.uint8)


def _quotes_enclose_fields(kept: NDArray[np.uint8], quotes: NDArray[np.intp]) -> bool:
    """Tell whether the quotes pair up, each pair enclosing one whole field."""
    if len(quotes) % 2:
        return False
    opens, closes = quotes[0::2], quotes[1::2]
    before = kept[np.maximum(opens - 1, 0)]
    after = kept[closes + 1]  # a line always ends with a newline
    if not (np.all((opens == 0) | (before == COMMA) | (before == NEWLINE))):
        return False
    if not np.all((after == COMMA) | (after == NEWLINE)):
        return False
    return not _separator_between(kept, opens, closes)


def _separator_between(
    kept: NDArray[np.uint8], opens: NDArray[np.intp], closes: NDArray[np.intp]
) -> bool:
    """Tell whether some pair of quotes encloses a comma or newline."""
    widest = int(np.max(closes - opens))
    if widest > SHORT_FIELD:  # look up every pair's separators: exact, but slower
        separators = _separators(kept)
        return bool(
            np.any(np.searchsorted(separators, opens) != np.searchsorted(separators, closes))
        )
    for offset in range(1, widest):  # a few passes over the short fields numbers make
        inside = opens + offset
        inside = inside[inside < closes]
        if np.any((kept[inside] == COMMA) | (kept[inside] == NEWLINE)):
            return True
    return False


def _without_integral_fractions(
    kept: NDArray[np.uint8], dots: NDArray[np.intp]
) -> NDArray[np.uint8] | None:
    """Drop each `.0...` that ends a field after a digit; None if some dot is not like that."""
    # What pandas writes, `12.0`, in a few passes over shifted views (each aligned with a
    # dot at 1..n-3; a line ends with a newline, so the last byte is never a dot).
    is_dot = kept == DOT
    if not (is_dot[0] or is_dot[-2]):
        ends = (kept[3:] == COMMA) | (kept[3:] == NEWLINE)
        pandas_like = ends & (kept[2:-1] == ZERO) & (kept[:-3] - ZERO < 10)
        if not np.any(is_dot[1:-2] & ~pandas_like):
            fraction = is_dot.copy()
            fraction[1:] |= is_dot[:-1]
            return kept[~fraction]
    if not (dots[0] > 0 and np.all(kept[dots - 1] - ZERO < 10)):
        return None
    separators = _separators(kept)
    field_ends = separators[np.searchsorted(separators, dots)]  # a line ends with a newline
    not_zero = np.flatnonzero(kept != ZERO)
    if np.any(not_zero[np.searchsorted(not_zero, dots, side="right")] != field_ends):
        return None  # something other than zeros between a dot and the end of its field
    return kept[~_ranges(len(kept), dots, field_ends)]


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


def _diagnose(lines: bytes, columns: _Columns, first_row: int) -> CSVFormatError:
    """Find the first bad row of a chunk the fast path rejected, and say what is wrong."""
    names = columns.names
    for row, line in enumerate(lines.split(b"\n")[:-1], start=first_row):
        if not line.strip(b', "'):
            continue  # an all-empty row: skipped
        cells = line.split(b",")
        if len(cells) != len(names):
            return _count_error(line, len(cells), len(names), row)
        for name, cell in zip(names, cells, strict=True):
            problem = _cell_problem(cell, name, columns.lead)
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
    return CSVFormatError(
        "wrong_column_count", f"row {row} has {found} values, expected {expected}", row=row
    )


def _cell_problem(cell: bytes, name: str, lead: str | None) -> tuple[str, str] | None:
    """Return (code, explanation) if a cell is not a valid value for its column."""
    if name in INDEX_NAMES and lead == "index":
        return None
    shown = repr(cell[:20])[1:]  # quoted, with non-ASCII bytes escaped
    plain = _undecorated(cell)
    if name == IMAGE_ID and lead == "image_id":
        if plain.isdigit() and len(plain) <= 18 and int(plain) > 0:
            return None
        return "bad_image_id", f"{shown} is not an ImageId (a positive integer)"
    wanted, top = ("a digit 0-9", 9) if name == "label" else ("an integer 0-255", 255)
    if not plain.strip():
        return "not_integer", f"empty value, expected {wanted}"
    try:
        number = int(plain)
    except ValueError:
        return "not_integer", f"{shown} is not {wanted}{_scaled_hint(plain, name)}"
    if not 0 <= number <= top:
        if name == "label":
            return "bad_label", f"{number} is not a digit 0-9"
        return "out_of_range", f"value {number} is outside 0-255"
    if not (plain.isdigit() and len(plain) <= 3):
        return "not_integer", f"{shown} must be written as plain digits, like {number}"
    return None


def _undecorated(cell: bytes) -> bytes:
    """The cell without what _forgive removes: enclosing quotes, and a `.000` after a digit."""
    if len(cell) >= 2 and cell[:1] == cell[-1:] == b'"':
        cell = cell[1:-1]
    whole, dot, fraction = cell.partition(b".")
    if dot and whole[-1:].isdigit() and not fraction.strip(b"0"):
        return whole
    return cell


def _scaled_hint(plain: bytes, name: str) -> str:
    try:
        number = float(plain)
    except ValueError:
        return ""
    if name != "label" and 0 < number < 1:
        return " (pixels scaled to 0-1? send the 0-255 integers)"
    return ""


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

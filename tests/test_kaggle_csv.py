"""Kaggle CSV reading and writing: accepted variants, every rejected case and its message."""

from __future__ import annotations

import csv
import gzip
import io
import re
import tempfile
import zipfile
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from formats import compressed, kaggle_csv
from formats.kaggle_csv import CSVFormatError, parse_kaggle_csv, read_kaggle_csv, write_kaggle_csv

HEADER = ",".join(f"pixel{i}" for i in range(784))
LABELLED_HEADER = "label," + HEADER
IMAGE_ID_HEADER = "ImageId"
# What a pixel cell may hold: 0-255 in up to three digits, as an integral float too.
VALID = r"(0{0,2}\d|0?[1-9]\d|1\d\d|2[0-4]\d|25[0-5])(\.0*)?"


def csv_text(pixels: np.ndarray, labels: np.ndarray | None = None, newline: str = "\n") -> str:
    """Format rows by hand, independently of write_kaggle_csv."""
    header = HEADER if labels is None else LABELLED_HEADER
    rows = [",".join(str(value) for value in row) for row in pixels]
    if labels is not None:
        rows = [f"{label},{row}" for label, row in zip(labels, rows, strict=True)]
    return newline.join([header, *rows]) + newline


def sample(rows: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (rows, 784), dtype=np.uint8), rng.integers(0, 10, rows)


def cells(row: int, values: dict[int, str], labelled: bool = True) -> list[str]:
    """The data lines of a small labelled file, with some cells of one row replaced."""
    pixels, labels = sample()
    lines = csv_text(pixels, labels if labelled else None).splitlines()
    fields = lines[row].split(",")
    for column, text in values.items():
        fields[column] = text
    lines[row] = ",".join(fields)
    return lines


def rejected(text: str | bytes, **kwargs: int) -> CSVFormatError:
    with pytest.raises(CSVFormatError) as caught:
        read_kaggle_csv(text.encode() if isinstance(text, str) else text, **kwargs)
    return caught.value


# Accepted input


@pytest.mark.parametrize("kind", ["bytes", "path", "str", "stream"])
def test_reads_a_labelled_train_csv_from_any_source(tmp_path: Path, kind: str) -> None:
    pixels, labels = sample()
    text = csv_text(pixels, labels).encode()
    (tmp_path / "train.csv").write_bytes(text)
    source = {
        "bytes": text,
        "path": tmp_path / "train.csv",
        "str": str(tmp_path / "train.csv"),
        "stream": io.BytesIO(text),
    }[kind]
    got_pixels, got_labels = read_kaggle_csv(source)
    assert got_pixels.dtype == np.uint8 and got_pixels.flags.c_contiguous
    assert got_labels is not None and got_labels.dtype == np.int64
    np.testing.assert_array_equal(got_pixels, pixels)
    np.testing.assert_array_equal(got_labels, labels)


def test_reads_an_unlabelled_test_csv() -> None:
    pixels, _ = sample()
    got_pixels, got_labels = read_kaggle_csv(csv_text(pixels).encode())
    np.testing.assert_array_equal(got_pixels, pixels)
    assert got_labels is None


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param(lambda text: text.replace("\n", "\r\n"), id="crlf"),
        pytest.param(lambda text: "\ufeff" + text, id="utf8-bom"),
        pytest.param(lambda text: text.rstrip("\n"), id="no-final-newline"),
        pytest.param(lambda text: text + "\n\n \n", id="trailing-blank-lines"),
        pytest.param(lambda text: "\ufeff" + text.replace("\n", "\r\n") + "\r\n", id="all"),
        pytest.param(
            lambda text: (
                ",".join(f'"{name}"' for name in LABELLED_HEADER.split(","))
                + text[len(LABELLED_HEADER) :]
            ),
            id="quoted-header",
        ),
    ],
)
def test_accepts_common_variants_of_the_format(variant) -> None:
    pixels, labels = sample()
    got_pixels, got_labels = read_kaggle_csv(variant(csv_text(pixels, labels)).encode("utf-8"))
    np.testing.assert_array_equal(got_pixels, pixels)
    np.testing.assert_array_equal(got_labels, labels)


@pytest.mark.parametrize("rows", [1, 2, 3, 4, 5, 7])
def test_rows_spanning_several_chunks(monkeypatch: pytest.MonkeyPatch, rows: int) -> None:
    monkeypatch.setattr(kaggle_csv, "PARSE_CHUNK_ROWS", 3)
    pixels, labels = sample(rows)
    for text in (csv_text(pixels, labels), csv_text(pixels, labels).rstrip("\n")):
        got_pixels, got_labels = read_kaggle_csv(text.encode())
        np.testing.assert_array_equal(got_pixels, pixels)
        np.testing.assert_array_equal(got_labels, labels)


def test_values_with_up_to_three_digits_including_leading_zeros() -> None:
    lines = cells(1, {0: "07", 1: "000", 2: "009", 3: "255", 4: "0"})
    got_pixels, got_labels = read_kaggle_csv("\n".join(lines).encode())
    assert got_labels is not None and got_labels[0] == 7
    assert got_pixels[0, :4].tolist() == [0, 9, 255, 0]


def test_row_limit_allows_exactly_max_rows() -> None:
    pixels, labels = sample(5)
    assert len(read_kaggle_csv(csv_text(pixels, labels).encode(), max_rows=5)[0]) == 5


# Rejected input: code, row, column and message


@pytest.mark.parametrize(
    ("row", "values", "code", "column", "message"),
    [
        (
            3,
            {18: "1.5"},
            "not_integer",
            "pixel17",
            "row 3, column pixel17: '1.5' is not an integer",
        ),
        (
            3,
            {18: "256"},
            "out_of_range",
            "pixel17",
            "row 3, column pixel17: value 256 is outside 0-255",
        ),
        (3, {18: "-1"}, "out_of_range", "pixel17", "value -1 is outside 0-255"),
        (3, {18: "1000"}, "out_of_range", "pixel17", "value 1000 is outside 0-255"),
        (2, {1: "NaN"}, "not_integer", "pixel0", "row 2, column pixel0: 'NaN' is not an integer"),
        (2, {1: ""}, "not_integer", "pixel0", "row 2, column pixel0: empty value"),
        (2, {784: "abc"}, "not_integer", "pixel783", "'abc' is not an integer 0-255"),
        (2, {5: " 7"}, "not_integer", "pixel4", "' 7' must be written as plain digits, like 7"),
        (2, {5: "+7"}, "not_integer", "pixel4", "must be written as plain digits"),
        (2, {5: "0007"}, "not_integer", "pixel4", "must be written as plain digits"),
        (2, {5: "1e2"}, "not_integer", "pixel4", "'1e2' is not an integer"),
        (2, {5: '"7'}, "not_integer", "pixel4", "'\"7' is not an integer"),
        (2, {5: '7"7"'}, "not_integer", "pixel4", "is not an integer"),
        (2, {5: "7.5"}, "not_integer", "pixel4", "'7.5' is not an integer 0-255"),
        (2, {5: ".0"}, "not_integer", "pixel4", "'.0' is not an integer"),
        (2, {5: "7.0.0"}, "not_integer", "pixel4", "'7.0.0' is not an integer"),
        (2, {5: '"256.0"'}, "out_of_range", "pixel4", "value 256 is outside 0-255"),
        (2, {5: "0.5"}, "not_integer", "pixel4", "(pixels scaled to 0-1? send the 0-255"),
        (2, {5: "\xe9"}, "not_integer", "pixel4", "is not an integer"),
        (4, {0: "11"}, "bad_label", "label", "row 4, column label: 11 is not a digit 0-9"),
        (4, {0: "x"}, "not_integer", "label", "row 4, column label: 'x' is not a digit 0-9"),
        (1, {0: ""}, "not_integer", "label", "row 1, column label: empty value, expected a digit"),
    ],
)
def test_bad_values_name_row_and_column(
    row: int, values: dict[int, str], code: str, column: str, message: str
) -> None:
    error = rejected("\n".join(cells(row, values)))
    assert (error.code, error.row, error.column) == (code, row, column)
    assert message in str(error)


def test_the_first_bad_row_is_reported() -> None:
    lines = cells(2, {7: "300"})
    fields = lines[4].split(",")
    fields[3] = "1.5"
    lines[4] = ",".join(fields)
    error = rejected("\n".join(lines))
    assert (error.row, error.column) == (2, "pixel6")


def test_row_numbers_count_across_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kaggle_csv, "PARSE_CHUNK_ROWS", 2)
    lines = cells(4, {100: "999"})
    error = rejected("\n".join(lines))
    assert (error.code, error.row, error.column) == ("out_of_range", 4, "pixel99")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda fields: fields[:-1], "row 3 has 784 values, expected 785"),
        (lambda fields: [*fields, "0"], "row 3 has 786 values, expected 785"),
    ],
)
def test_wrong_column_count(edit, message: str) -> None:
    lines = cells(3, {})
    lines[3] = ",".join(edit(lines[3].split(",")))
    error = rejected("\n".join(lines))
    assert (error.code, error.row) == ("wrong_column_count", 3)
    assert str(error) == message


def test_unlabelled_rows_must_have_784_values() -> None:
    lines = cells(1, {}, labelled=False)
    lines[1] = lines[1] + ",0"
    assert str(rejected("\n".join(lines))) == "row 1 has 785 values, expected 784"


@pytest.mark.parametrize(
    ("header", "column", "message"),
    [
        (HEADER.replace("pixel17,", "pixel71,"), "pixel71", "header column 18 is 'pixel71'"),
        ("Label," + HEADER, "Label", "header column 1 is 'Label', expected 'pixel0'"),
        (HEADER.replace("pixel0,pixel1,", "pixel1,pixel0,"), "pixel1", "expected 'pixel0'"),
        (HEADER.rsplit(",", 1)[0], "pixel783", "ends before column 784 'pixel783'"),
        ("label," + HEADER.rsplit(",", 1)[0], "pixel783", "ends before column 785 'pixel783'"),
        (HEADER + ",label", "label", "header column 785 'label' is one too many"),
        (",".join(["0"] * 784), None, "the first line holds numbers, not a header"),
    ],
)
def test_bad_header(header: str, column: str | None, message: str) -> None:
    pixels, _ = sample()
    body = csv_text(pixels).split("\n", 1)[1]
    error = rejected(header + "\n" + body)
    assert (error.code, error.row, error.column) == ("bad_header", None, column)
    assert message in str(error)


@pytest.mark.parametrize(("separator", "word"), [(";", "semicolons"), ("\t", "tabs")])
def test_other_delimiters_are_named(separator: str, word: str) -> None:
    pixels, labels = sample()
    error = rejected(csv_text(pixels, labels).replace(",", separator))
    assert error.code == "bad_delimiter"
    assert str(error) == f"the header is separated by {word}; use commas"
    lines = cells(2, {})
    lines[2] = lines[2].replace(",", separator)
    error = rejected("\n".join(lines))
    assert (error.code, error.row) == ("bad_delimiter", 2)
    assert str(error) == f"row 2 is separated by {word}; use commas"


@pytest.mark.parametrize(
    ("text", "code", "message"),
    [
        (b"", "empty", "the file is empty"),
        (b"\r\n\n  \n", "empty", "the file is empty"),
        (HEADER.encode(), "empty", "no data rows"),
        ((LABELLED_HEADER + "\r\n\r\n").encode(), "empty", "no data rows"),
        ((HEADER + "\n0").encode("utf-16"), "bad_encoding", "UTF-16 text; save it as UTF-8"),
        ((HEADER + "\n0").encode("utf-16-be"), "bad_encoding", "NUL bytes"),
        (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "bad_encoding", "not UTF-8 text (byte 0x89"),
        (bytes(range(128, 256)) * 4, "bad_encoding", "not UTF-8 text (byte 0x80"),
        (b"PK\x03\x04\x14\0\0\0", "bad_archive", "the zip archive cannot be read"),
        (b"\x1f\x8b\x08\0", "bad_archive", "the gzip data ends early"),
        (b"\x1f\x8b\x08\0" + bytes(20), "bad_archive", "the gzip data is corrupt"),
        (HEADER.encode() + b"\n,,,\n\n, ,\n", "empty", "every row below the header is empty"),
        ((HEADER + "\r0\r").encode(), "bad_line_endings", "bare CR (old Mac format)"),
    ],
)
def test_empty_and_non_text_files(text: bytes, code: str, message: str) -> None:
    error = rejected(text)
    assert (error.code, error.row, error.column) == (code, None, None)
    assert message in str(error)


def test_binary_garbage_in_the_data_rows() -> None:
    lines = cells(2, {})
    text = ("\n".join(lines[:2]) + "\n").encode() + b",".join([b"\xff\xfe\x00"] * 785)
    error = rejected(text)
    assert (error.code, error.row, error.column) == ("not_integer", 2, "label")
    assert str(error) == r"row 2, column label: '\xff\xfe\x00' is not a digit 0-9"


def test_row_limit() -> None:
    pixels, labels = sample(6)
    error = rejected(csv_text(pixels, labels), max_rows=5)
    assert error.code == "too_many_rows"
    assert str(error) == "6 rows is more than the limit of 5"


def test_the_error_is_a_value_error() -> None:
    assert issubclass(CSVFormatError, ValueError)


# Writing


def test_writer_matches_the_format_byte_for_byte(tmp_path: Path) -> None:
    pixels, labels = sample()
    write_kaggle_csv(tmp_path / "train.csv", pixels, labels)
    write_kaggle_csv(tmp_path / "test.csv", pixels)
    assert (tmp_path / "train.csv").read_text() == csv_text(pixels, labels)
    assert (tmp_path / "test.csv").read_text() == csv_text(pixels)


def test_writer_refuses_what_the_reader_would_refuse(tmp_path: Path) -> None:
    pixels, labels = sample()
    with pytest.raises(ValueError, match="uint8"):
        write_kaggle_csv(tmp_path / "x.csv", pixels.astype(np.int64))
    with pytest.raises(ValueError, match="digit 0-9"):
        write_kaggle_csv(tmp_path / "x.csv", pixels, labels + 1)


# Properties


matrices = st.integers(1, 12).flatmap(
    lambda rows: st.tuples(
        arrays(np.uint8, (rows, 784), elements=st.integers(0, 255)),
        st.one_of(st.none(), arrays(np.int64, (rows,), elements=st.integers(0, 9))),
    )
)


@settings(max_examples=40, deadline=None)
@given(matrix=matrices, chunk_rows=st.integers(1, 5), crlf=st.booleans())
def test_round_trip_through_the_writer(matrix, chunk_rows: int, crlf: bool) -> None:
    pixels, labels = matrix
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "digits.csv"
        write_kaggle_csv(path, pixels, labels)
        text = path.read_bytes()
    with mock.patch.object(kaggle_csv, "PARSE_CHUNK_ROWS", chunk_rows):
        got_pixels, got_labels = read_kaggle_csv(text.replace(b"\n", b"\r\n") if crlf else text)
    np.testing.assert_array_equal(got_pixels, pixels)
    if labels is None:
        assert got_labels is None
    else:
        np.testing.assert_array_equal(got_labels, labels)


small_file = st.integers(1, 4).map(lambda rows: csv_text(*sample(rows)).encode())


@settings(max_examples=200, deadline=None)
@given(
    text=small_file,
    position=st.floats(0, 1),
    removed=st.integers(0, 4),
    inserted=st.binary(max_size=6),
)
def test_random_corruption_raises_only_csv_format_error(
    text: bytes, position: float, removed: int, inserted: bytes
) -> None:
    at = int(position * len(text))
    corrupted = text[:at] + inserted + text[at + removed :]
    try:
        pixels, labels = read_kaggle_csv(corrupted)
    except CSVFormatError as error:
        assert error.code and str(error)
    else:
        assert pixels.dtype == np.uint8 and pixels.shape[1] == 784
        assert labels is None or (labels.min() >= 0 and labels.max() <= 9)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 4),
    data=st.data(),
    bad=st.one_of(
        st.integers(256, 10**6).map(str),
        st.integers(-999, -1).map(str),
        st.floats(allow_nan=True).map(str).filter(lambda text: not re.fullmatch(VALID, text)),
        st.text(alphabet="abcxyz .-+;", min_size=1, max_size=5),
    ),
)
def test_a_bad_cell_is_always_found_with_its_row_and_column(rows: int, data, bad: str) -> None:
    row = data.draw(st.integers(1, rows))
    column = data.draw(st.integers(1, 784))
    lines = csv_text(*sample(rows)).splitlines()
    fields = lines[row].split(",")
    fields[column] = bad
    lines[row] = ",".join(fields)
    error = rejected("\n".join(lines))
    assert (error.row, error.column) == (row, f"pixel{column - 1}")


@settings(max_examples=300, deadline=None)
@given(
    head=st.sampled_from([b"", HEADER.encode() + b"\n", LABELLED_HEADER.encode() + b"\r\n"]),
    body=st.binary(max_size=300),
)
def test_any_bytes_raise_only_csv_format_error(head: bytes, body: bytes) -> None:
    try:
        pixels, labels = read_kaggle_csv(head + body)
    except CSVFormatError as error:
        assert error.code and str(error)
    else:
        assert pixels.dtype == np.uint8 and pixels.shape[1] == 784
        assert labels is None or len(labels) == len(pixels)


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 6), limit=st.integers(1, 6), blank_lines=st.integers(0, 3))
def test_the_row_limit_counts_data_rows_only(rows: int, limit: int, blank_lines: int) -> None:
    text = csv_text(*sample(rows)) + "\n" * blank_lines
    if rows > limit:
        assert rejected(text, max_rows=limit).code == "too_many_rows"
    else:
        pixels, labels = read_kaggle_csv(text.encode(), max_rows=limit)
        assert len(pixels) == len(labels) == rows


# Files as people save them: accepted where the meaning is certain


def parse(text: str | bytes, **kwargs: int) -> kaggle_csv.KaggleCSV:
    return parse_kaggle_csv(text.encode() if isinstance(text, str) else text, **kwargs)


def pandas_csv(pixels: np.ndarray, labels: np.ndarray | None, **to_csv: object) -> str:
    """The file pandas writes for a frame of these columns (index and floats as asked)."""
    frame = pd.DataFrame(pixels, columns=kaggle_csv.PIXEL_NAMES)
    if labels is not None:
        frame.insert(0, "label", labels)
    return str(frame.to_csv(**to_csv))


def test_pandas_default_to_csv_with_its_index_column() -> None:
    pixels, labels = sample(5)
    frame_text = pandas_csv(pixels, labels)  # index=True: a first column with no name
    assert frame_text.startswith(",label,pixel0")
    parsed = parse(frame_text)
    np.testing.assert_array_equal(parsed.pixels, pixels)
    np.testing.assert_array_equal(parsed.labels, labels)
    assert parsed.image_ids is None


def test_an_unnamed_index_column_as_pandas_reads_it_back_is_ignored() -> None:
    pixels, _ = sample(3)
    lines = csv_text(pixels).splitlines()
    index = ["Unnamed: 0", "0", "12345", "x"]  # any value: an index carries no meaning here
    text = "\n".join(f"{first},{line}" for first, line in zip(index, lines, strict=True))
    np.testing.assert_array_equal(parse(text).pixels, pixels)


def test_integral_floats_as_pandas_writes_them_after_a_float_step() -> None:
    pixels, labels = sample(4)
    text = pandas_csv(pixels.astype(np.float64), labels.astype(np.float64), index=False)
    assert ",255.0," in text or ",0.0," in text
    parsed = parse(text)
    np.testing.assert_array_equal(parsed.pixels, pixels)
    np.testing.assert_array_equal(parsed.labels, labels)


def test_rfc_4180_quoted_fields() -> None:
    pixels, labels = sample(3)
    text = pandas_csv(pixels, labels, index=False, quoting=csv.QUOTE_ALL)
    assert text.startswith('"label","pixel0"') and ('"0"' in text or '"1"' in text)
    parsed = parse(text.replace("\n", "\r\n"))
    np.testing.assert_array_equal(parsed.pixels, pixels)
    np.testing.assert_array_equal(parsed.labels, labels)


def test_quoted_integral_floats_with_an_index_column() -> None:
    pixels, labels = sample(3)
    text = pandas_csv(pixels.astype(float), labels, quoting=csv.QUOTE_NONNUMERIC)
    np.testing.assert_array_equal(parse(text).pixels, pixels)


def test_image_id_column_numbers_the_rows() -> None:
    pixels, _ = sample(3)
    lines = csv_text(pixels).splitlines()
    ids = [IMAGE_ID_HEADER, "7", "1000000", "3"]
    parsed = parse("\n".join(f"{first},{line}" for first, line in zip(ids, lines, strict=True)))
    np.testing.assert_array_equal(parsed.pixels, pixels)
    assert parsed.image_ids is not None and parsed.image_ids.tolist() == [7, 1_000_000, 3]
    assert parsed.labels is None


@pytest.mark.parametrize("bad", ["0", "-3", "x", "", "1.5"])
def test_a_bad_image_id_is_named(bad: str) -> None:
    pixels, _ = sample(3)
    lines = csv_text(pixels).splitlines()
    ids = [IMAGE_ID_HEADER, "1", bad, "3"]
    error = rejected("\n".join(f"{first},{line}" for first, line in zip(ids, lines, strict=True)))
    assert (error.code, error.row, error.column) == ("bad_image_id", 2, "ImageId")
    assert "is not an ImageId (a positive integer)" in str(error)


def test_excel_empty_rows_and_sep_line_are_skipped_and_counted() -> None:
    pixels, labels = sample(4)
    lines = csv_text(pixels, labels).splitlines()
    empty = "," * 784
    text = "\r\n".join(["sep=,", lines[0], lines[1], empty, lines[2], "", lines[3], lines[4]])
    parsed = parse(text + "\r\n" + empty + "\r\n" + empty + "\r\n")
    np.testing.assert_array_equal(parsed.pixels, pixels)
    np.testing.assert_array_equal(parsed.labels, labels)
    assert parsed.skipped_rows == 4


def test_rows_after_skipped_rows_keep_their_file_row_number() -> None:
    lines = cells(3, {5: "300"})
    lines.insert(2, "," * 784)  # data row 2 is empty; the bad row is now data row 4
    error = rejected("\n".join(lines))
    assert (error.code, error.row, error.column) == ("out_of_range", 4, "pixel4")


def test_the_row_limit_counts_rows_that_are_kept() -> None:
    pixels, labels = sample(3)
    text = csv_text(pixels, labels) + ("," * 784 + "\n") * 5
    assert len(parse(text, max_rows=3).pixels) == 3
    assert rejected(text, max_rows=2).code == "too_many_rows"


@pytest.mark.parametrize(
    ("first_line", "message"),
    [("sep=;", "declares sep=;; use commas"), ("sep=\t", "declares sep=; use commas")],
)
def test_a_sep_line_naming_another_delimiter_is_refused(first_line: str, message: str) -> None:
    pixels, labels = sample()
    error = rejected(first_line + "\n" + csv_text(pixels, labels))
    assert error.code == "bad_delimiter" and message in str(error)


# Compressed files: Kaggle's zip, .csv.gz; limits apply to the uncompressed size


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def test_kaggle_zip_gives_its_test_csv() -> None:
    pixels, labels = sample(5)
    test_pixels, _ = sample(3, seed=1)
    archive = zip_bytes(
        {
            "sample_submission.csv": b"ImageId,Label\n1,0\n",
            "train.csv": csv_text(pixels, labels).encode(),
            "test.csv": csv_text(test_pixels).encode(),
        }
    )
    parsed = parse(archive)
    np.testing.assert_array_equal(parsed.pixels, test_pixels)
    assert parsed.labels is None


def test_a_zip_with_one_csv_gives_it() -> None:
    pixels, labels = sample(2)
    archive = zip_bytes({"notes.txt": b"hi", "digits/mine.csv": csv_text(pixels, labels).encode()})
    np.testing.assert_array_equal(parse(archive).labels, labels)


def test_a_zip_with_several_csvs_and_no_test_csv_is_refused() -> None:
    error = rejected(zip_bytes({"a.csv": b"x", "b.csv": b"y"}))
    assert error.code == "bad_archive"
    assert str(error) == "the zip holds a.csv, b.csv: expected test.csv or exactly one CSV file"


def test_gzip_files_of_one_or_more_members() -> None:
    pixels, labels = sample(4)
    text = csv_text(pixels, labels).encode()
    halves = gzip.compress(text[:5000]) + gzip.compress(text[5000:])
    for data in (gzip.compress(text), halves):
        np.testing.assert_array_equal(parse(data).pixels, pixels)


def test_zip_and_gzip_bombs_are_refused_past_the_limit() -> None:
    limit = kaggle_csv.text_limit(2)
    bomb = b"0," * (limit // 2 + 10)  # compresses ~1000:1
    assert len(gzip.compress(bomb)) < limit // 100
    for data in (gzip.compress(bomb), zip_bytes({"test.csv": bomb})):
        error = rejected(data, max_rows=2)
        assert error.code == "too_large"
        assert f"more than the limit of {limit:,} bytes uncompressed" in str(error)


def test_a_zip_that_understates_its_size_is_cut_at_the_limit() -> None:
    limit = kaggle_csv.text_limit(1)
    archive = bytearray(zip_bytes({"test.csv": b"1" * (limit * 3)}))
    # Rewrite the uncompressed size in the central directory to claim 10 bytes.
    central = archive.rindex(b"PK\x01\x02")
    archive[central + 24 : central + 28] = (10).to_bytes(4, "little")
    with pytest.raises(compressed.ArchiveError) as caught:
        compressed.unzip_csv(bytes(archive), limit)
    assert caught.value.code in {"too_large", "bad_archive"}


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 5),
    chunk_rows=st.integers(1, 3),
    data=st.data(),
)
def test_decorated_cells_read_as_their_values(rows: int, chunk_rows: int, data) -> None:
    """Any mix of quotes, `.0`, `.00`, `.` and plain cells, in any cell: the same pixels."""
    pixels, labels = sample(rows)
    lines = csv_text(pixels, labels).splitlines()
    decorations = st.sampled_from(["{}", '"{}"', "{}.0", "{}.00", "{}.", '"{}.0"'])
    for row in range(1, rows + 1):
        fields = lines[row].split(",")
        for column in data.draw(st.sets(st.integers(0, 784), max_size=6)):
            fields[column] = data.draw(decorations).format(fields[column])
        lines[row] = ",".join(fields)
    with mock.patch.object(kaggle_csv, "PARSE_CHUNK_ROWS", chunk_rows):
        parsed = parse("\n".join(lines) + data.draw(st.sampled_from(["", "\n"])))
    np.testing.assert_array_equal(parsed.pixels, pixels)
    np.testing.assert_array_equal(parsed.labels, labels)

"""MNIST IDX files: raw and gzip, every type code, and clear errors on damaged files."""

from __future__ import annotations

import gzip
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from model.idx import IDXFormatError, read_idx

CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D}


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode an array as IDX by the format's description, independently of the reader."""
    header = struct.pack(">BBBB", 0, 0, CODES[array.dtype.type], array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write(path: Path, raw: bytes) -> Path:
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path


@pytest.mark.parametrize("name", ["t10k-images-idx3-ubyte", "t10k-images-idx3-ubyte.gz"])
def test_images_raw_and_gzip(tmp_path: Path, name: str) -> None:
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    got = read_idx(write(tmp_path / name, idx_bytes(images)))
    assert got.dtype == np.uint8 and got.shape == (5, 28, 28)
    np.testing.assert_array_equal(got, images)


def test_gzip_is_recognised_by_content_not_name(tmp_path: Path) -> None:
    labels = np.array([7, 2, 1, 0], np.uint8)
    path = tmp_path / "labels"
    path.write_bytes(gzip.compress(idx_bytes(labels)))
    np.testing.assert_array_equal(read_idx(path), labels)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.float32])
def test_wider_types_come_back_in_native_byte_order(tmp_path: Path, dtype: type) -> None:
    array = np.arange(-6, 6).astype(dtype).reshape(3, 4)
    got = read_idx(write(tmp_path / "a.idx", idx_bytes(array)))
    assert got.dtype == np.dtype(dtype) and got.dtype.isnative
    np.testing.assert_array_equal(got, array)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "not an IDX file"),
        (b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00", "bad magic number"),
        (b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00", "unknown IDX type code 0x07"),
        (b"\x00\x00\x08\x03" + struct.pack(">I", 10), "truncated header"),
        (b"\x00\x00\x08\x00", "declares no dimensions"),
        (idx_bytes(np.zeros((4, 28, 28), np.uint8))[:-1], "found 3,135 (truncated file)"),
        (idx_bytes(np.zeros(3, np.uint8)) + b"\x00", "needs 3 data bytes, found 4"),
    ],
)
def test_damaged_files_are_refused_clearly(tmp_path: Path, raw: bytes, message: str) -> None:
    with pytest.raises(IDXFormatError, match=re.escape(message)):
        read_idx(write(tmp_path / "bad.idx", raw))


def test_broken_gzip_is_refused_clearly(tmp_path: Path) -> None:
    packed = gzip.compress(idx_bytes(np.zeros(100, np.uint8)))
    path = tmp_path / "bad.gz"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(IDXFormatError, match="broken gzip data"):
        read_idx(path)

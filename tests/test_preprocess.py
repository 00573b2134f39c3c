"""Pictures of digits in, MNIST-style 28x28 out: `pictures.preprocess` on generated images."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

import model
from model import data
from pictures.preprocess import ImageError, preprocess

WEIGHTS = Path(__file__).resolve().parent.parent / "model" / "weights" / "cnn.npz"
SAMPLE = 500  # MNIST test digits redrawn for the accuracy comparison


@pytest.fixture(scope="session")
def mnist_test() -> tuple[np.ndarray, np.ndarray]:
    """The MNIST test split: (10000, 784) uint8 pixels and their labels."""
    _, _, x_test, y_test = data.load_mnist()
    return x_test, y_test


@pytest.fixture(scope="session")
def shipped() -> model.Network:
    """The shipped network that `digits up` publishes."""
    return model.load(WEIGHTS)


def encode(picture: np.ndarray, fmt: str = "PNG", **options: object) -> bytes:
    """Encode an array (grey, or RGBA with a last axis of 4) in an image format."""
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, fmt, **options)
    return buffer.getvalue()


def disk(radius: float) -> np.ndarray:
    """A round footprint for growing or thinning strokes."""
    r = round(radius)
    rows, cols = np.mgrid[-r : r + 1, -r : r + 1]
    return rows**2 + cols**2 <= r * r + 0.5


def redraw(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw an MNIST digit as dark ink on white paper: bigger canvas, random place, size, pen."""
    width, height = rng.integers(100, 401, size=2)
    rows, cols = np.nonzero(digit)
    glyph = digit[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    factor = rng.uniform(0.4, 0.9) * min(width, height) / max(glyph.shape)
    size = (max(1, round(glyph.shape[1] * factor)), max(1, round(glyph.shape[0] * factor)))
    ink = np.asarray(Image.fromarray(glyph).resize(size, Image.Resampling.BICUBIC))
    pen = rng.uniform(-0.35, 0.7) * factor  # grow or thin the strokes by up to this radius
    if pen >= 1:
        ink = ndimage.grey_dilation(ink, footprint=disk(pen))
    elif pen <= -1:
        ink = ndimage.grey_erosion(ink, footprint=disk(-pen))
    canvas = np.zeros((height, width), np.uint8)
    top = rng.integers(0, height - ink.shape[0] + 1)
    left = rng.integers(0, width - ink.shape[1] + 1)
    canvas[top : top + ink.shape[0], left : left + ink.shape[1]] = ink
    return 255 - canvas


def handwritten(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """A redrawn digit as a JPEG of random quality."""
    return encode(redraw(digit, rng), "JPEG", quality=int(rng.integers(50, 96)))


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims the given size: what a decompression bomb shows before it inflates."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0"))


@pytest.fixture(scope="module")
def paper(mnist_test: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """The first MNIST test digit (a 7) drawn black on white."""
    digit = mnist_test[0][0].reshape(28, 28)
    return redraw(digit, np.random.default_rng(7))


@pytest.fixture(scope="module")
def reference(paper: np.ndarray) -> np.ndarray:
    return preprocess(encode(paper)).pixels


def mean_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


def test_output_is_placed_like_mnist(reference: np.ndarray) -> None:
    assert reference.shape == (28, 28) and reference.dtype == np.uint8
    rows, cols = np.nonzero(reference)
    height, width = np.ptp(rows) + 1, np.ptp(cols) + 1
    assert max(height, width) in (20, 21)  # 20 px box; anti-aliasing may touch one more row
    centre = ndimage.center_of_mass(reference.astype(np.float64))
    assert np.allclose(centre, (14, 14), atol=0.5)
    assert reference.max() == 255 and reference[0].max() == reference[:, 0].max() == 0


def test_redrawn_digits_look_like_the_originals(mnist_test: tuple[np.ndarray, np.ndarray]) -> None:
    rng = np.random.default_rng(1)
    digits = mnist_test[0][:50]
    seen = np.stack(
        [preprocess(handwritten(d.reshape(28, 28), rng)).pixels.ravel() for d in digits]
    )
    correlation = [np.corrcoef(a, b)[0, 1] for a, b in zip(seen, digits, strict=True)]
    assert np.median(correlation) > 0.9
    assert min(correlation) > 0.5


def test_light_ink_on_dark_gives_the_same_pixels(paper: np.ndarray, reference: np.ndarray) -> None:
    assert np.array_equal(preprocess(encode(255 - paper)).pixels, reference)


@pytest.mark.parametrize("stroke", [0, 255], ids=["dark-strokes", "light-strokes"])
@pytest.mark.parametrize("clear", [0, 255], ids=["clear-black", "clear-white"])
def test_transparent_canvas_strokes(
    paper: np.ndarray, reference: np.ndarray, stroke: int, clear: int
) -> None:
    alpha = 255 - paper  # the ink is where the canvas is opaque
    canvas = np.zeros((*paper.shape, 4), np.uint8)
    canvas[..., :3] = np.where(alpha[..., None] > 0, stroke, clear)
    canvas[..., 3] = alpha
    assert mean_difference(preprocess(encode(canvas)).pixels, reference) < 1.0


def test_noise_specks_are_ignored(paper: np.ndarray, reference: np.ndarray) -> None:
    rng = np.random.default_rng(3)
    noisy = paper.copy()
    height, width = paper.shape
    rows, cols, sizes = (
        rng.integers(0, height, 40),
        rng.integers(0, width, 40),
        rng.integers(1, 4, 40),
    )
    for row, col, size in zip(rows, cols, sizes, strict=True):
        noisy[row : row + size, col : col + size] = 0
    assert mean_difference(preprocess(encode(noisy)).pixels, reference) < 3.0


def test_grey_photo_with_uneven_light(paper: np.ndarray, reference: np.ndarray) -> None:
    rng = np.random.default_rng(4)
    light = np.linspace(170, 210, paper.shape[1])[None, :]  # brighter on the right
    ink = (255 - paper) / 255.0
    photo = light * (1 - ink) + 60 * ink + rng.normal(0, 8, paper.shape)
    picture = encode(np.clip(photo, 0, 255).astype(np.uint8), "JPEG", quality=80)
    assert mean_difference(preprocess(picture).pixels, reference) < 6.0


def test_marker_strokes_are_thinned(paper: np.ndarray, reference: np.ndarray) -> None:
    marker = 255 - ndimage.grey_dilation(255 - paper, footprint=disk(12))
    seen = preprocess(encode(marker)).pixels
    assert seen.sum() < 1.2 * reference.sum()  # unthinned: 1.44 times the ink
    assert np.corrcoef(seen.ravel(), reference.ravel())[0, 1] > 0.95  # unthinned: 0.85


def test_a_blob_is_not_thinned_away() -> None:
    rows, cols = np.mgrid[0:200, 0:200]
    dot = np.where((rows - 100) ** 2 + (cols - 100) ** 2 < 60**2, 0, 255).astype(np.uint8)
    seen = preprocess(encode(dot)).pixels
    assert (seen > 128).sum() > 200  # a filled disc about 20 px across


@pytest.mark.parametrize(
    ("fmt", "options", "tolerance"),
    [
        ("PNG", {}, 0.0),
        ("BMP", {}, 0.0),
        ("GIF", {}, 0.0),
        ("WEBP", {"lossless": True}, 0.0),
        ("WEBP", {"quality": 80}, 4.0),
        ("JPEG", {"quality": 75}, 4.0),
    ],
)
def test_each_format(
    paper: np.ndarray, reference: np.ndarray, fmt: str, options: dict, tolerance: float
) -> None:
    assert mean_difference(preprocess(encode(paper, fmt, **options)).pixels, reference) <= tolerance


@pytest.mark.parametrize("mode", ["RGB", "P", "1", "I;16"])
def test_each_pixel_mode(paper: np.ndarray, reference: np.ndarray, mode: str) -> None:
    image = Image.fromarray(paper)
    if mode == "I;16":
        image = Image.fromarray(paper.astype(np.uint16) * 257)  # 16-bit grey
    else:
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    tolerance = 4.0 if mode == "1" else 0.5  # bilevel loses the grey edges before we start
    assert mean_difference(preprocess(buffer.getvalue()).pixels, reference) <= tolerance


def test_exif_orientation_is_applied(paper: np.ndarray, reference: np.ndarray) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    buffer = io.BytesIO()
    Image.fromarray(np.rot90(paper)).save(buffer, "PNG", exif=exif)
    assert np.array_equal(preprocess(buffer.getvalue()).pixels, reference)


def test_big_pictures_are_reduced_first(mnist_test: tuple[np.ndarray, np.ndarray]) -> None:
    digit = mnist_test[0][1].reshape(28, 28)
    big = np.asarray(Image.fromarray(255 - digit).resize((3000, 3000), Image.Resampling.BICUBIC))
    small = np.asarray(Image.fromarray(255 - digit).resize((300, 300), Image.Resampling.BICUBIC))
    assert mean_difference(preprocess(encode(big)).pixels, preprocess(encode(small)).pixels) < 3.0


@pytest.mark.parametrize(
    "picture",
    [
        encode(np.full((200, 300), 255, np.uint8)),
        encode(np.zeros((50, 50), np.uint8)),
        encode(np.full((200, 200), 240, np.uint8), "JPEG", quality=30),
        encode(np.zeros((100, 100, 4), np.uint8)),
        encode(np.random.default_rng(0).integers(230, 256, (100, 100), dtype=np.uint8)),
    ],
    ids=["white", "black", "grey-jpeg", "empty-canvas", "faint-noise"],
)
def test_blank_pictures_are_refused(picture: bytes) -> None:
    with pytest.raises(ImageError) as refused:
        preprocess(picture)
    assert (refused.value.code, refused.value.status) == ("blank_image", 422)
    assert "blank" in refused.value.message


@pytest.mark.parametrize(
    "size",
    [(6000, 5000), (10_000, 10_000), (20_000, 20_000)],
    ids=["over-our-limit", "pillow-warning", "pillow-error"],
)
def test_decompression_bombs_are_refused(size: tuple[int, int]) -> None:
    with pytest.raises(ImageError) as refused:
        preprocess(png_header(*size))
    assert (refused.value.code, refused.value.status) == ("image_too_large", 413)


def test_the_pixel_limit_is_a_parameter(paper: np.ndarray) -> None:
    with pytest.raises(ImageError) as refused:
        preprocess(encode(paper), max_pixels=paper.size - 1)
    assert refused.value.status == 413


@pytest.mark.parametrize(
    ("picture", "code"),
    [
        (b"", "empty_image"),
        (b"this is not an image", "unreadable_image"),
        (
            encode(np.random.default_rng(0).integers(0, 256, (40, 40), np.uint8))[:800],
            "unreadable_image",
        ),
        (encode(np.zeros((40, 40), np.uint8), "TIFF"), "unreadable_image"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "unreadable_image"),
    ],
    ids=["empty", "text", "truncated-png", "tiff", "broken-header"],
)
def test_unreadable_uploads_are_refused(picture: bytes, code: str) -> None:
    with pytest.raises(ImageError) as refused:
        preprocess(picture)
    assert refused.value.code == code
    assert 400 <= refused.value.status < 500


def test_accuracy_matches_raw_pixels(
    mnist_test: tuple[np.ndarray, np.ndarray], shipped: model.Network
) -> None:
    x_test, y_test = mnist_test
    rng = np.random.default_rng(0)
    chosen = rng.choice(len(x_test), SAMPLE, replace=False)
    seen = np.stack(
        [preprocess(handwritten(x_test[i].reshape(28, 28), rng)).pixels.ravel() for i in chosen]
    )
    raw = float((shipped.predict(x_test[chosen]) == y_test[chosen]).mean())
    redrawn = float((shipped.predict(seen) == y_test[chosen]).mean())
    print(f"accuracy on {SAMPLE} MNIST test digits: raw {raw:.4f}, redrawn as JPEGs {redrawn:.4f}")
    assert redrawn >= raw - 0.01


@pytest.mark.parametrize("orientation", [1, 6], ids=["upright", "exif-rotated"])
def test_box_is_in_the_original_pixels(
    mnist_test: tuple[np.ndarray, np.ndarray], orientation: int
) -> None:
    digit = np.asarray(Image.fromarray(mnist_test[0][2].reshape(28, 28)).resize((280, 280)))
    page = np.full((2000, 3000), 255, np.uint8)
    page[900:1180, 1700:1980] = 255 - digit
    rows, cols = np.nonzero(page < 128)
    ink = [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored = np.rot90(page) if orientation == 6 else page  # 6: turn clockwise to display
    buffer = io.BytesIO()
    Image.fromarray(stored).save(buffer, "PNG", exif=exif)
    box = preprocess(buffer.getvalue()).box
    # The page is found at 1/6 scale: the box may be off by the 6 px of one working pixel.
    assert np.abs(np.array(box) - ink).max() <= 6, (box, ink)


def test_a_stray_mark_is_dropped_but_two_strokes_are_kept() -> None:
    page = np.full((300, 400), 255, np.uint8)
    page[100:200, 95:105] = 0  # a stroke 100 px long
    page[20:24, 350:356] = 0  # a stray mark far from it: dropped
    # The one-pixel blur before the threshold may widen the ink by a pixel.
    assert np.abs(np.subtract(preprocess(encode(page)).box, [95, 100, 105, 200])).max() <= 1
    page[100:180, 295:305] = 0  # a second stroke of about the same size, far away: kept
    assert np.abs(np.subtract(preprocess(encode(page)).box, [95, 100, 305, 200])).max() <= 1

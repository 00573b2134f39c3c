"""`digits bench images`: photographed and scanned digits through POST /v1/predict/image.

    digits bench images [--per-kind 300] [--seed 0] [--timing-runs 40] [--kinds clean,shadow]

Runs a private service (`scripts.bench.stack`: its own redis-server and `digits up` with one
worker, serving the shipped CNN), then for each kind of `scripts.bench.photos` makes
`--per-kind` pictures from MNIST **test** digits (chosen with `--seed`; the pictures are made
in memory, never written), sends each to `POST /v1/predict/image` and counts the right
answers, beside the same digits sent as raw MNIST pixels to `POST /v1/predict`: the ceiling.

Time per picture: one 4000x3000 phone JPEG (a shadowed page, quality 90) through the endpoint,
against Pillow alone decoding and reducing that JPEG the way the endpoint does (libjpeg's
reduced-scale decode, then a box reduction to at most 512 px) and against a full-size decode,
interleaved in the same run so all three see the same machine load.
"""

from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import requests
from PIL import Image

from model import data
from pictures.picture import WORK_SIDE
from scripts.bench import photos
from scripts.bench.report import load_average, write_section
from scripts.bench.stack import stack

TARGET_KIND, TARGET_OVERALL, TARGET_CLEAN, TARGET_LOWRES = 0.98, 0.99, 0.995, 0.97
TARGET_RATIO = 1.5  # endpoint p50 / Pillow's decode-and-reduce p50 at 4000x3000
PHONE = (4000, 3000)


def register(subparsers: Any) -> None:
    """Add `digits bench images`."""
    parser = subparsers.add_parser("images", help="photos and scans of digits, per kind")
    parser.add_argument("--per-kind", type=int, default=300, help="pictures of each kind")
    parser.add_argument("--seed", type=int, default=0, help="chooses the digits and pictures")
    parser.add_argument("--timing-runs", type=int, default=40, help="4000x3000 requests timed")
    parser.add_argument("--kinds", default=",".join(photos.KINDS), help="comma-separated")
    parser.add_argument("--save", type=Path, help="write the results here as JSON, no report")
    parser.add_argument(
        "--report", type=Path, nargs="+", help="measure nothing: report these --save files"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    """Measure every kind and the 4000x3000 timing; write the `images` section.

    Kinds can be measured by several runs at once (`--kinds ... --save part.json`), then
    reported together (`--report part1.json part2.json`).
    """
    if args.report:
        parts = [json.loads(path.read_text()) for path in args.report]
        rows = [row for part in parts for row in part["rows"]]
        timing = next(part["timing"] for part in parts if part["timing"])
    else:
        rows, timing = _measure(args)
        if args.save:
            args.save.write_text(json.dumps({"rows": rows, "timing": timing}))
            return
    title = "Photos and scans of digits (POST /v1/predict/image)"
    write_section("images", title, _report(rows, timing, args))


def _measure(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, list[float]]]:
    _, _, x_test, y_test = data.load_mnist()
    with stack(workers=1) as service, requests.Session() as session:
        rows = [
            _kind(session, service.url, kind, x_test, y_test, args)
            for kind in args.kinds.split(",")
        ]
        timing = _timing(session, service.url, x_test, args.timing_runs, args.seed)
    return rows, timing


def _kind(
    session: requests.Session,
    url: str,
    kind: str,
    x_test: np.ndarray,
    y_test: np.ndarray,
    args: argparse.Namespace,
) -> dict[str, Any]:
    rng = np.random.default_rng([args.seed, photos.KINDS.index(kind)])
    chosen = rng.choice(len(x_test), args.per_kind, replace=False)
    labels, refused = [], 0
    for number, index in enumerate(chosen):
        body, content_type = photos.picture(
            x_test[index].reshape(28, 28), kind, seed=args.seed * 1_000_000 + number
        )
        response = session.post(
            f"{url}/v1/predict/image", data=body, headers={"Content-Type": content_type}
        )
        if response.status_code == 422:
            refused += 1
            labels.append(-1)
            continue
        response.raise_for_status()
        labels.append(response.json()["labels"][0])
    raw = session.post(f"{url}/v1/predict", json={"images": x_test[chosen].tolist()})
    raw.raise_for_status()
    truth = y_test[chosen]
    row = {
        "kind": kind,
        "n": len(chosen),
        "pictures": float(np.mean(np.asarray(labels) == truth)),
        "raw": float(np.mean(np.asarray(raw.json()["labels"]) == truth)),
        "refused": refused,
    }
    print(row, flush=True)
    return row


def phone_jpeg(digit: np.ndarray, seed: int) -> bytes:
    """A 4000x3000 JPEG (quality 90) of a digit on a shadowed page, with a sensor's noise.

    The noise (Gaussian, 4 grey levels) makes the file as large as a phone's, some MB: the
    time to decode a JPEG grows with its compressed size.
    """
    rng = np.random.default_rng(seed)
    page = photos.render_page(digit, "shadow", PHONE, rng).astype(np.float32)
    page += rng.normal(0, 4, page.shape).astype(np.float32)
    page = np.clip(page, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(page).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def pillow_thumbnail(jpeg: bytes) -> Image.Image:
    """Pillow alone, its own call for it: `Image.thumbnail` to at most WORK_SIDE px."""
    image = Image.open(io.BytesIO(jpeg))
    image.thumbnail((WORK_SIDE, WORK_SIDE))
    return image


def pillow_reduced(jpeg: bytes) -> Image.Image:
    """Pillow alone, as the endpoint decodes: DCT-scaled to >= WORK_SIDE / 2, box-reduced."""
    image = Image.open(io.BytesIO(jpeg))
    image.draft("RGB", (WORK_SIDE // 2 + 1, WORK_SIDE // 2 + 1))
    image.load()
    factor = -(-max(image.size) // WORK_SIDE)
    return image.reduce(factor) if factor > 1 else image


def pillow_full(jpeg: bytes) -> Image.Image:
    """Pillow alone: decode at full size, then box-reduce to at most WORK_SIDE px."""
    image = Image.open(io.BytesIO(jpeg))
    image.load()
    return image.reduce(-(-max(image.size) // WORK_SIDE))


def _timing(
    session: requests.Session, url: str, x_test: np.ndarray, runs: int, seed: int
) -> dict[str, list[float]]:
    if runs == 0:
        return {}
    jpeg = phone_jpeg(x_test[0].reshape(28, 28), seed)
    times: dict[str, list[float]] = {"endpoint": [], "thumbnail": [], "reduced": [], "full": []}
    headers = {"Content-Type": "image/jpeg"}
    session.post(f"{url}/v1/predict/image", data=jpeg, headers=headers).raise_for_status()
    for _ in range(runs):
        start = time.perf_counter()
        pillow_thumbnail(jpeg)
        times["thumbnail"].append(time.perf_counter() - start)
        start = time.perf_counter()
        pillow_reduced(jpeg)
        times["reduced"].append(time.perf_counter() - start)
        start = time.perf_counter()
        session.post(f"{url}/v1/predict/image", data=jpeg, headers=headers).raise_for_status()
        times["endpoint"].append(time.perf_counter() - start)
        start = time.perf_counter()
        pillow_full(jpeg)
        times["full"].append(time.perf_counter() - start)
    times["bytes"] = [float(len(jpeg))]
    return times


def _ms(values: list[float], q: float) -> float:
    return 1000 * float(np.percentile(values, q))


def _report(
    rows: list[dict[str, Any]], timing: dict[str, list[float]], args: argparse.Namespace
) -> str:
    lines = [
        f"Pictures made from MNIST test digits by `scripts/bench/photos.py` (seed {args.seed};"
        " kinds described there), each sent to `POST /v1/predict/image` of a private"
        " `digits up` (1 worker, shipped CNN); raw: the same digits as MNIST pixels to"
        f" `POST /v1/predict`. Load average at the end: {load_average()}.",
        "",
        "| kind | pictures | read right | raw pixels | refused (422) | target |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in rows:
        target = _target(row["kind"])
        met = "met" if row["pictures"] >= target else "**missed**"
        lines.append(
            f"| {row['kind']} | {row['n']} | {100 * row['pictures']:.2f}% |"
            f" {100 * row['raw']:.2f}% | {row['refused']} | ≥ {100 * target:g}% — {met} |"
        )
    paper = [row for row in rows if row["kind"] in photos.PAPER_KINDS]
    if paper:
        overall = sum(r["pictures"] * r["n"] for r in paper) / sum(r["n"] for r in paper)
        raw = sum(r["raw"] * r["n"] for r in paper) / sum(r["n"] for r in paper)
        met = "met" if overall >= TARGET_OVERALL else "**missed**"
        lines.append(
            f"| all paper photos | {sum(r['n'] for r in paper)} | {100 * overall:.2f}% |"
            f" {100 * raw:.2f}% | {sum(r['refused'] for r in paper)} |"
            f" ≥ {100 * TARGET_OVERALL:g}% — {met} |"
        )
    endpoint = float(np.median(timing["endpoint"]))
    ratio = endpoint / float(np.median(timing["thumbnail"]))
    same_decode = endpoint / float(np.median(timing["reduced"]))
    met = "met" if ratio <= TARGET_RATIO else "**missed**"
    lines += [
        "",
        f"Time per 4000x3000 JPEG ({timing['bytes'][0] / 1e6:.1f} MB, quality 90),"
        f" {len(timing['endpoint'])} runs interleaved:",
        "",
        "| what | p50 | p99 |",
        "| --- | ---: | ---: |",
        f"| `POST /v1/predict/image`, whole round trip | {_ms(timing['endpoint'], 50):.1f} ms |"
        f" {_ms(timing['endpoint'], 99):.1f} ms |",
        f"| Pillow alone: `Image.thumbnail(({WORK_SIDE}, {WORK_SIDE}))` |"
        f" {_ms(timing['thumbnail'], 50):.1f} ms | {_ms(timing['thumbnail'], 99):.1f} ms |",
        "| Pillow alone: the endpoint's own decode (1/8 DCT scaling, then box-reduce) |"
        f" {_ms(timing['reduced'], 50):.1f} ms | {_ms(timing['reduced'], 99):.1f} ms |",
        f"| Pillow alone: full decode + reduce | {_ms(timing['full'], 50):.1f} ms |"
        f" {_ms(timing['full'], 99):.1f} ms |",
        "",
        f"Endpoint p50 / Pillow's `thumbnail` p50: **{ratio:.2f}×** (target ≤ {TARGET_RATIO:g}×"
        f" — {met}). Against the decode the endpoint itself does (already the cheapest way to"
        f" read that JPEG at this size) it is {same_decode:.2f}×: the rest of the round trip"
        " (HTTP, preprocessing, the queue and the forward pass) costs that much more.",
    ]
    return "\n".join(lines)


def _target(kind: str) -> float:
    if kind.startswith("lowres"):
        return TARGET_LOWRES
    return TARGET_CLEAN if kind in ("clean", "canvas") else TARGET_KIND

"""Training report figures: learning curves, confusion matrix, misclassified digits,
reliability diagram."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from model import calibration


def _pyplot() -> Any:
    """Import pyplot on first use: it costs ~1 s, and every `digits` command imports this."""
    import matplotlib

    matplotlib.use("Agg")  # files only: training runs on servers without a display
    import matplotlib.pyplot as plt

    return plt


def confusion(y_true: NDArray[np.int64], y_pred: NDArray[np.int64]) -> NDArray[np.int64]:
    """Return the 10x10 count matrix, rows = true digit, columns = predicted digit."""
    return np.bincount(y_true * 10 + y_pred, minlength=100).reshape(10, 10)


def plot_curves(history: Sequence[dict[str, Any]], path: Path) -> None:
    """Save loss and accuracy per epoch, training (augmented batches) against validation."""
    epochs = [record["epoch"] for record in history]
    fig, (loss_ax, acc_ax) = _pyplot().subplots(1, 2, figsize=(10, 4))
    for split, style in (("train", "-o"), ("val", "-s")):
        loss_ax.plot(epochs, [r[f"{split}_loss"] for r in history], style, label=split)
        acc_ax.plot(epochs, [100 * r[f"{split}_accuracy"] for r in history], style, label=split)
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy", yscale="log", title="loss")
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    acc_ax.set_ylim(max(90.0, acc_ax.get_ylim()[0]), 100)
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.legend()
    _save(fig, path)


def plot_confusion(matrix: NDArray[np.int64], path: Path, title: str) -> None:
    """Save the confusion matrix with its counts written in each cell."""
    fig, ax = _pyplot().subplots(figsize=(6.5, 5.5))
    shown = np.log1p(matrix)  # keep the rare mistakes visible next to the diagonal
    image = ax.imshow(shown, cmap="Blues")
    for (row, col), count in np.ndenumerate(matrix):
        if count:
            light = shown[row, col] > shown.max() / 2
            ax.text(col, row, str(count), ha="center", va="center", fontsize=7,
                    color="white" if light else "black")  # fmt: skip
    ax.set(xticks=range(10), yticks=range(10), xlabel="predicted", ylabel="true", title=title)
    fig.colorbar(image, ax=ax, label="log(1 + count)")
    _save(fig, path)


def plot_errors(
    pixels: NDArray[np.uint8],
    y_true: NDArray[np.int64],
    probabilities: NDArray[np.float32],
    path: Path,
    limit: int = 100,
) -> None:
    """Save a grid of misclassified digits titled `true -> predicted (probability)`."""
    y_pred = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(y_pred != y_true)[:limit]
    cols = 10
    rows = max(1, -(-len(wrong) // cols))
    fig, axes = _pyplot().subplots(rows, cols, figsize=(cols * 1.1, rows * 1.25), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, index in zip(axes.flat, wrong, strict=False):
        ax.imshow(pixels[index].reshape(28, 28), cmap="gray_r")
        label = f"{y_true[index]}→{y_pred[index]} ({probabilities[index, y_pred[index]]:.2f})"
        ax.set_title(label, fontsize=7)
    fig.suptitle(f"misclassified test digits: first {len(wrong)} of {(y_pred != y_true).sum()}")
    _save(fig, path)


def plot_reliability(
    splits: dict[str, tuple[NDArray[np.float32], NDArray[np.int64]]], path: Path, title: str
) -> None:
    """Save a reliability diagram: accuracy against confidence per bin, one line per split.

    `splits` maps a split's name to its (probabilities `(n, 10)`, labels `(n,)`); the
    legend gives each split's ECE (15 bins, model.calibration).
    """
    fig, (ax, count_ax) = _pyplot().subplots(
        2, 1, figsize=(5.5, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    ax.plot([0, 1], [0, 1], ":", color="grey", label="perfect calibration")
    for name, (probabilities, labels) in splits.items():
        counts, accuracy, confidence = calibration.reliability(probabilities, labels)
        used = counts > 0
        error = 100 * calibration.ece(probabilities, labels)
        ax.plot(confidence[used], accuracy[used], "-o", label=f"{name} (ECE {error:.2f}%)")
        count_ax.plot(confidence[used], counts[used], "-o", label=name)
    ax.set(ylabel="accuracy", title=title, xlim=(0, 1.01), ylim=(0, 1.01))
    count_ax.set(xlabel="confidence (calibrated top probability)", ylabel="images", yscale="log")
    for axis in (ax, count_ax):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    _save(fig, path)


def _save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    _pyplot().close(fig)

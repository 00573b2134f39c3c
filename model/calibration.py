"""Calibration: temperature scaling, its metrics, and the confidence threshold for "uncertain".

Temperature scaling (Guo, Pleiss, Sun and Weinberger 2017, "On Calibration of Modern Neural
Networks") divides the logits by one scalar T > 0 fitted by minimising the negative
log-likelihood on held-out data: the predicted class never changes, only how sure the
model says it is. Label smoothing makes a network under-confident (top probability near
0.9), so the fitted T is below 1.

A network's metadata holds the result under `calibration` (`CALIBRATION`):

    temperature           T; `predict_proba` returns softmax(logits / T)
    confidence_threshold  an answer whose calibrated top probability is below this is
                          "uncertain" (chosen on validation, `choose_threshold`)
    target                the selective accuracy and coverage the threshold was chosen for
    validation            ECE, NLL, Brier, accuracy, selective accuracy and coverage there
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

Logits = NDArray[np.float32]
Labels = NDArray[np.int64]

CALIBRATION = "calibration"  # metadata key
ECE_BINS = 15  # Guo et al. 2017 report ECE over 15 equal-width confidence bins
# "Uncertain" target: answers not flagged are right >= 99.9% of the time (issue 13).
TARGET_ACCURACY = 0.999
TARGET_COVERAGE = 0.985  # ... while at least this share of digits is not flagged
LOG_T_BOUNDS = (-5.0, 5.0)  # T in [0.007, 148]: far beyond any useful temperature


def softmax(logits: NDArray[Any], temperature: float = 1.0) -> NDArray[np.float32]:
    """Return softmax(logits / temperature) `(n, k)` float32; stable for any finite logits."""
    Z = np.asarray(logits, np.float64) / temperature
    Z -= Z.max(axis=1, keepdims=True)
    P = np.exp(Z)
    P /= P.sum(axis=1, keepdims=True)
    return P.astype(np.float32)


def nll(probabilities: NDArray[Any], labels: Labels) -> float:
    """Return the mean negative log-likelihood (nats) of the true labels."""
    picked = np.asarray(probabilities, np.float64)[np.arange(len(labels)), labels]
    return float(-np.log(np.maximum(picked, 1e-12)).mean())


def brier(probabilities: NDArray[Any], labels: Labels) -> float:
    """Return the Brier score: mean over images of the squared error summed over classes."""
    P = np.asarray(probabilities, np.float64)
    onehot = np.zeros_like(P)
    onehot[np.arange(len(labels)), labels] = 1
    return float(np.square(P - onehot).sum(axis=1).mean())


def ece(probabilities: NDArray[Any], labels: Labels, bins: int = ECE_BINS) -> float:
    """Return the expected calibration error (a fraction, 0-1) over equal-width bins.

    Sum over bins of (share of images in the bin) * |accuracy - mean confidence| of the
    top class (Naeini et al. 2015; Guo et al. 2017, eq. 3).
    """
    counts, accuracy, confidence = reliability(probabilities, labels, bins)
    return float((counts / counts.sum() * np.abs(accuracy - confidence)).sum())


def reliability(
    probabilities: NDArray[Any], labels: Labels, bins: int = ECE_BINS
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
    """Return per confidence bin `(bins,)`: image count, accuracy, mean top probability.

    Bin b holds top probabilities in (b / bins, (b + 1) / bins]; empty bins give 0, 0.
    """
    P = np.asarray(probabilities, np.float64)
    top = P.max(axis=1)
    right = (P.argmax(axis=1) == labels).astype(np.float64)
    which = np.clip(np.ceil(top * bins).astype(np.int64) - 1, 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    shown = np.maximum(counts, 1)
    accuracy = np.bincount(which, right, minlength=bins) / shown
    confidence = np.bincount(which, top, minlength=bins) / shown
    return counts, accuracy, confidence


def fit_temperature(logits: Logits, labels: Labels) -> float:
    """Return the temperature T minimising the NLL of softmax(logits / T) on `labels`.

    A bounded 1-D search over log T (Brent's method, scipy.optimize.minimize_scalar):
    the NLL is convex in 1/T, so the minimum found is the global one.
    """
    Z = np.asarray(logits, np.float64)
    rows = np.arange(len(labels))

    def loss(log_t: float) -> float:
        scaled = Z / np.exp(log_t)
        top = scaled.max(axis=1)
        log_sum = np.log(np.exp(scaled - top[:, None]).sum(axis=1)) + top
        return float((log_sum - scaled[rows, labels]).mean())

    from scipy.optimize import minimize_scalar  # here: it costs a second to import

    found = minimize_scalar(loss, bounds=LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-6})
    return float(np.exp(found.x))


def selective(probabilities: NDArray[Any], labels: Labels, threshold: float) -> tuple[float, float]:
    """Return (accuracy on answers not flagged, share not flagged) at a confidence threshold.

    An answer is flagged "uncertain" when its top probability is below `threshold`.
    Accuracy is 1.0 when nothing is left unflagged.
    """
    P = np.asarray(probabilities)
    kept = P.max(axis=1) >= threshold
    right = P.argmax(axis=1) == labels
    coverage = float(kept.mean())
    return (float(right[kept].mean()) if kept.any() else 1.0), coverage


def choose_threshold(
    probabilities: NDArray[Any], labels: Labels, target_accuracy: float = TARGET_ACCURACY
) -> float:
    """Return the lowest confidence threshold whose unflagged answers reach `target_accuracy`.

    Lowest threshold = most answers kept. Candidates are the observed top probabilities;
    with a finite validation set the accuracy reached there is an estimate, so the
    threshold is reported beside the test split's own selective accuracy and coverage.
    """
    P = np.asarray(probabilities)
    top = P.max(axis=1)
    order = np.argsort(-top, kind="stable")  # most confident first
    right = (P.argmax(axis=1) == labels)[order]
    kept_accuracy = np.cumsum(right) / np.arange(1, len(right) + 1)  # keeping the first i+1
    # A cut must fall between distinct confidences: keep only the last index of ties.
    distinct = np.r_[top[order][1:] != top[order][:-1], True]
    good = np.flatnonzero((kept_accuracy >= target_accuracy) & distinct)
    if not len(good):
        return float(np.nextafter(top.max(), np.inf))  # flag everything
    return float(top[order][good[-1]])


def summary(probabilities: NDArray[Any], labels: Labels, threshold: float) -> dict[str, float]:
    """Return accuracy, ECE, NLL, Brier, selective accuracy and coverage of probabilities."""
    kept_accuracy, coverage = selective(probabilities, labels, threshold)
    return {
        "accuracy": float((np.asarray(probabilities).argmax(axis=1) == labels).mean()),
        "ece": ece(probabilities, labels),
        "nll": nll(probabilities, labels),
        "brier": brier(probabilities, labels),
        "selective_accuracy": kept_accuracy,
        "coverage": coverage,
    }


def calibrate(logits: Logits, labels: Labels) -> dict[str, Any]:
    """Fit temperature and threshold on validation logits; return the `calibration` record."""
    temperature = fit_temperature(logits, labels)
    probabilities = softmax(logits, temperature)
    threshold = choose_threshold(probabilities, labels)
    return {
        "method": "temperature scaling (Guo et al. 2017), fitted on the validation split",
        "temperature": temperature,
        "confidence_threshold": threshold,
        "target": {"selective_accuracy": TARGET_ACCURACY, "coverage": TARGET_COVERAGE},
        "validation": summary(probabilities, labels, threshold) | {"images": len(labels)},
    }

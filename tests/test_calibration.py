"""Temperature scaling, calibration metrics and the "uncertain" threshold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import model
from model import calibration


def _synthetic(temperature: float, n: int = 20_000, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Logits and labels drawn from softmax(logits / temperature): T is the right answer."""
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal((n, 10)) * 3).astype(np.float32)
    P = calibration.softmax(logits, temperature).astype(np.float64)
    labels = (rng.random((n, 1)) > np.cumsum(P, axis=1)).sum(axis=1)
    return logits, np.minimum(labels, 9).astype(np.int64)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.5])
def test_fit_recovers_a_known_temperature(temperature: float) -> None:
    logits, labels = _synthetic(temperature)
    # 20,000 draws: the maximum-likelihood estimate is within a few percent (measured
    # spread over seeds ~1%), far tighter than the gap between the cases.
    assert calibration.fit_temperature(logits, labels) == pytest.approx(temperature, rel=0.05)


def test_calibrated_probabilities_have_a_small_ece_and_overconfident_ones_do_not() -> None:
    logits, labels = _synthetic(2.0)
    fitted = calibration.fit_temperature(logits, labels)
    assert calibration.ece(calibration.softmax(logits, fitted), labels) < 0.01
    assert calibration.ece(calibration.softmax(logits, 1.0), labels) > 0.05
    good, raw = calibration.softmax(logits, fitted), calibration.softmax(logits, 1.0)
    assert calibration.nll(good, labels) < calibration.nll(raw, labels)
    assert calibration.brier(good, labels) < calibration.brier(raw, labels)


def test_metrics_on_a_hand_computed_case() -> None:
    P = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]])
    y = np.array([0, 1, 1, 0])
    # Top probabilities 0.9, 0.6, 0.7, 0.8 fall in four different 1/15-wide bins;
    # the answers are right, wrong, right, wrong.
    expected = (abs(1 - 0.9) + abs(0 - 0.6) + abs(1 - 0.7) + abs(0 - 0.8)) / 4
    assert calibration.ece(P, y) == pytest.approx(expected)
    assert calibration.nll(P, y) == pytest.approx(-np.log([0.9, 0.4, 0.7, 0.2]).mean())
    brier = ((0.1**2 * 2) + (0.6**2 * 2) + (0.3**2 * 2) + (0.8**2 * 2)) / 4
    assert calibration.brier(P, y) == pytest.approx(brier)


def test_threshold_keeps_the_most_answers_that_reach_the_target() -> None:
    top = np.array([0.99, 0.98, 0.97, 0.96, 0.95, 0.94])
    P = np.stack([top, 1 - top], axis=1)
    y = np.array([0, 0, 0, 1, 0, 1])  # the 4th and 6th most confident answers are wrong
    threshold = calibration.choose_threshold(P, y, target_accuracy=0.75)
    assert threshold == pytest.approx(0.95)  # keeps 5 answers, 4 right: 80% >= 75%
    assert calibration.selective(P, y, threshold) == pytest.approx((0.8, 5 / 6))
    strict = calibration.choose_threshold(P, y, target_accuracy=1.0)
    assert strict == pytest.approx(0.97)
    assert calibration.selective(P, y, strict) == pytest.approx((1.0, 0.5))


def test_no_threshold_reaches_the_target_flags_everything() -> None:
    P = np.array([[0.9, 0.1], [0.8, 0.2]])
    threshold = calibration.choose_threshold(P, np.array([1, 1]))
    assert calibration.selective(P, np.array([1, 1]), threshold)[1] == 0.0


def test_predict_proba_applies_the_temperature_and_keeps_the_labels() -> None:
    net = model.build("mlp", seed=0)
    pixels = np.random.default_rng(1).integers(0, 256, (50, 784), dtype=np.uint8)
    logits = net.logits(pixels)
    assert net.temperature == 1.0 and net.confidence_threshold is None
    net.metadata["calibration"] = {"temperature": 0.5, "confidence_threshold": 0.9}
    P = net.predict_proba(pixels)
    # float32 softmax against float64: differences of a few ulps of values <= 1
    np.testing.assert_allclose(P, calibration.softmax(logits, 0.5), atol=1e-6)
    np.testing.assert_array_equal(net.predict(pixels), logits.argmax(axis=1))
    assert net.confidence_threshold == 0.9


def test_calibration_survives_a_save_and_load(tmp_path: Path) -> None:
    net = model.build("mlp", seed=0)
    logits, labels = _synthetic(1.5, n=2000)
    net.metadata["calibration"] = calibration.calibrate(logits, labels)
    model.save(net, tmp_path / "net.npz")
    loaded = model.load(tmp_path / "net.npz")
    assert loaded.temperature == pytest.approx(1.5, rel=0.15)
    assert loaded.confidence_threshold == net.confidence_threshold

"""A short real training run on MNIST, and the files `digits train` writes."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

import model
from model import data
from model.augment import Warp
from model.trainer import TrainConfig, evaluate, fit, split
from scripts import cli
from scripts import train as train_command


@pytest.fixture(scope="module")
def mnist() -> tuple[np.ndarray, ...]:
    return data.load_mnist()  # fetched into the data directory when missing


def test_a_few_thousand_images_reach_90_percent(mnist: tuple[np.ndarray, ...]) -> None:
    x_train, y_train, x_test, y_test = mnist
    config = TrainConfig(arch="mlp", epochs=3, batch_size=64, lr=3e-3, val_size=500)
    x, y, x_val, y_val = split(x_train[:8500], y_train[:8500], config.val_size, seed=0)
    net = model.build("mlp", seed=0)
    history = fit(net, config, (x, y), (x_val, y_val), progress=False)
    accuracy, _ = evaluate(net, x_test[:2000], y_test[:2000])
    assert accuracy > 0.90  # about 0.94 with these settings
    assert [record["epoch"] for record in history] == [1, 2, 3]


def test_training_is_reproducible(mnist: tuple[np.ndarray, ...]) -> None:
    x_train, y_train, _, _ = mnist
    config = TrainConfig(arch="cnn", epochs=1, batch_size=50, val_size=100, augment=True)
    states = []
    for _ in range(2):
        net = model.build("cnn", seed=1)
        fit(net, config, (x_train[:300], y_train[:300]), (x_train[-100:], y_train[-100:]), False)
        states.append(net.state())
    assert all(np.array_equal(states[0][name], states[1][name]) for name in states[0])


def test_best_epoch_is_restored(mnist: tuple[np.ndarray, ...]) -> None:
    x_train, y_train, _, _ = mnist
    val = (x_train[-500:], y_train[-500:])
    config = TrainConfig(arch="mlp", epochs=3, batch_size=100, val_size=500)
    net = model.build("mlp", seed=0)
    history = fit(net, config, (x_train[:1000], y_train[:1000]), val, progress=False)
    best = max(record["val_accuracy"] for record in history)
    assert evaluate(net, *val)[0] == pytest.approx(best)


def test_train_writes_weights_metrics_and_figures(
    mnist: tuple[np.ndarray, ...], tmp_path: Path
) -> None:
    x_train, y_train, x_test, y_test = mnist
    splits = (x_train[:1200], y_train[:1200], x_test[:300], y_test[:300])
    config = TrainConfig(arch="cnn", epochs=1, batch_size=100, val_size=200, augment=True,
                         warp=Warp(degrees=5, scale=0.05, shift=1))  # fmt: skip
    out = tmp_path / "net.npz"
    metrics = train_command.train(config, splits, out, progress=False)
    net = model.load(out)
    assert net.version == metrics["version"]
    assert net.metadata["metrics"]["test_accuracy"] == metrics["test_accuracy"]
    assert net.metadata["data_checksum"] == data.checksum(splits[0], splits[1])
    assert net.metadata["training"]["warp"] == asdict(config.warp)
    assert net.metadata["calibration"]["temperature"] == metrics["temperature"] > 0
    assert 0 < net.confidence_threshold <= 1
    for part in ("val", "test"):
        assert {f"{part}_{name}" for name in ("ece", "nll", "brier", "coverage")} <= set(metrics)
    assert {"epochs", "seed", "created_at", "library_versions"} <= net.metadata.keys()
    written = json.loads((tmp_path / "net.metrics.json").read_text())
    assert written["version"] == metrics["version"]
    assert np.array(written["confusion"]).sum() == 300
    for figure in ("curves", "confusion", "errors", "reliability"):
        assert (tmp_path / f"net.{figure}.png").read_bytes().startswith(b"\x89PNG")


def test_unknown_optimizer_is_rejected(mnist: tuple[np.ndarray, ...]) -> None:
    x_train, y_train, _, _ = mnist
    config = TrainConfig(optimizer="rmsprop", epochs=1)
    with pytest.raises(ValueError, match="unknown optimizer"):
        fit(model.build("mlp"), config, (x_train[:10], y_train[:10]), (x_train[:10], y_train[:10]))


def test_distortion_flags_reach_the_warp() -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["train", "--arch", "cnn", "--elastic", "34", "--low-res", "0.1"])
    config = train_command.config_from(args)
    assert config.warp.elastic_alpha == 34 and config.warp.low_res == 0.1
    assert config.warp.stroke == 0 and config.warp.degrees == 10  # the rest stays default
    plain = train_command.config_from(parser.parse_args(["train", "--arch", "mlp"]))
    assert plain == train_command.DEFAULTS["mlp"]

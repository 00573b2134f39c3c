"""The training loop: minibatches, one-cycle schedule, best epoch kept by validation accuracy."""

from __future__ import annotations

import math
import os
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from model import parallel
from model.augment import Warp, augment
from model.layers import Array, Conv2D
from model.losses import softmax_cross_entropy
from model.network import Network
from model.optim import SGD, Adam
from model.schedule import one_cycle

Pixels = NDArray[np.uint8]
Labels = NDArray[np.int64]


@dataclass
class TrainConfig:
    """Knobs of one training run (`scripts/train.py` holds the defaults per architecture)."""

    arch: str = "mlp"  # network architecture: "mlp" or "cnn"
    epochs: int = 10  # passes over the training split
    batch_size: int = 128  # images per gradient step
    optimizer: str = "adam"  # "adam" (AdamW when weight_decay > 0) or "sgd" (Nesterov)
    lr: float = 2e-3  # peak learning rate of the one-cycle schedule
    warmup: float = 0.2  # fraction of all steps spent warming up to the peak rate
    weight_decay: float = 0.0  # decoupled decay of weights and kernels, per unit of rate
    label_smoothing: float = 0.0  # target probability mass spread over all ten classes
    augment: bool = False  # warp training images at random on every pass
    warp: Warp = field(default_factory=Warp)  # rotation, zoom and shift ranges when augmenting
    val_size: int = 5000  # training images held out to pick the best epoch
    seed: int = 0  # seeds initialisation, shuffling, dropout and augmentation
    split_seed: int = 0  # seeds the validation split alone: every member of an ensemble shares it
    threads: int | None = None  # cores to train on; None: every core this process may use


def split(x: Pixels, y: Labels, val_size: int, seed: int) -> tuple[Pixels, Labels, Pixels, Labels]:
    """Hold out `val_size` random images: return (x_train, y_train, x_val, y_val)."""
    order = np.random.default_rng(seed).permutation(len(x))
    train, val = order[val_size:], order[:val_size]
    return x[train], y[train], x[val], y[val]


def evaluate(net: Network, x: Pixels, y: Labels) -> tuple[float, float]:
    """Return (accuracy, mean cross-entropy) of `net` on labelled images."""
    return scores(net.predict_proba(x), y)


def scores(P: NDArray[np.float32], y: Labels) -> tuple[float, float]:
    """Return (accuracy, mean cross-entropy) of probabilities `(n, 10)` against labels."""
    loss = float(-np.log(np.maximum(P[np.arange(len(y)), y], 1e-12)).mean())
    return float((P.argmax(axis=1) == y).mean()), loss


def make_optimizer(config: TrainConfig) -> SGD | Adam:
    """Return the optimizer named by the config."""
    if config.optimizer == "adam":
        return Adam(weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return SGD(momentum=0.9, nesterov=True, weight_decay=config.weight_decay)
    raise ValueError(f"unknown optimizer {config.optimizer!r}; choose 'adam' or 'sgd'")


def fit(
    net: Network,
    config: TrainConfig,
    train: tuple[Pixels, Labels],
    val: tuple[Pixels, Labels],
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Train `net` in place; restore its best epoch by validation accuracy.

    Returns one record per epoch: train loss/accuracy (running, on the augmented batches),
    validation loss/accuracy, learning rate at the end and seconds spent.
    """
    with threads_for(net, config.threads):
        history = _fit(net, config, train, val, progress)
    return history


def threads_for(net: Network, threads: int | None = None) -> AbstractContextManager[None]:
    """Return the way `net` uses `threads` cores (default: all this process may use).

    A convolutional network splits its batches over threads (model.parallel), BLAS held
    to one thread: most of its step is memory-bound NumPy work that BLAS's threads never
    touch (measured on 2 cores: 41 ms a CNN step with BLAS's 2 threads, 35 ms in parts).
    A dense network's step is its GEMMs, which BLAS's own threads already share out.
    """
    if any(isinstance(layer, Conv2D) for layer in net.layers):
        return parallel.use(len(os.sched_getaffinity(0)) if threads is None else threads)
    return nullcontext() if threads is None else threadpool_limits(limits=threads)


def _fit(
    net: Network,
    config: TrainConfig,
    train: tuple[Pixels, Labels],
    val: tuple[Pixels, Labels],
    progress: bool,
) -> list[dict[str, Any]]:
    x, y = train
    rng = np.random.default_rng(config.seed)
    optimizer = make_optimizer(config)
    steps = math.ceil(len(x) / config.batch_size)
    history: list[dict[str, Any]] = []
    best: tuple[float, dict[str, Array]] = (-1.0, {})
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        order = rng.permutation(len(x))
        bar = tqdm(range(steps), desc=f"epoch {epoch}/{config.epochs}", disable=not progress)
        loss_sum = correct = seen = 0.0
        lr = 0.0
        for step in bar:
            batch = order[step * config.batch_size : (step + 1) * config.batch_size]
            lr = one_cycle(
                (epoch - 1) * steps + step, config.epochs * steps, config.lr, config.warmup
            )
            loss, hits = train_step(net, optimizer, x[batch], y[batch], lr, config, rng)
            loss_sum, correct, seen = (
                loss_sum + loss * len(batch),
                correct + hits,
                seen + len(batch),
            )
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}")
        val_acc, val_loss = evaluate(net, *val)
        record = {
            "epoch": epoch,
            "train_loss": loss_sum / seen,
            "train_accuracy": correct / seen,
            "val_loss": val_loss,
            "val_accuracy": val_acc,
            "lr": lr,
            "seconds": time.perf_counter() - started,
        }
        history.append(record)
        if progress:
            tqdm.write(f"epoch {epoch}: val_accuracy {val_acc:.4f}, val_loss {val_loss:.4f}")
        if val_acc > best[0]:
            best = (val_acc, {name: array.copy() for name, array in net.state().items()})
    net.load_state(best[1])
    return history


def train_step(
    net: Network,
    optimizer: SGD | Adam,
    pixels: Pixels,
    labels: Labels,
    lr: float,
    config: TrainConfig,
    rng: np.random.Generator,
) -> tuple[float, int]:
    """Run one forward/backward/update on a batch; return its loss and correct count."""
    images = augment(pixels, rng, config.warp) if config.augment else pixels
    logits = net.forward(net.normalise(images), training=True)  # (n, 10)
    loss, dZ, _ = softmax_cross_entropy(logits, labels, config.label_smoothing)
    hits = int((logits.argmax(axis=1) == labels).sum())
    net.backward(dZ)
    optimizer.update(net.layers, lr)
    return loss, hits

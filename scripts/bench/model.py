"""`digits bench model`: NumPy network vs PyTorch CPU, same architecture, same machine.

Training: seconds per epoch over the 55,000-image training split (batch 128, Adam, no
augmentation on either side), estimated from the median time of timed runs of `--steps`
batches each. Inference: images per second on 10,000 raw uint8 test images, pixels to
probabilities, PyTorch running the NumPy network's own weights (outputs compared).
PyTorch comes from the `bench` extra: `pip install -e '.[bench]'`.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

import model
from model import data
from model.optim import Adam
from model.trainer import TrainConfig, threads_for, train_step
from scripts.bench.report import load_average, median, write_section

TRAIN_IMAGES = 55_000  # the training split left after holding out 5,000 for validation
BATCH = 128


def register(subparsers: Any) -> None:
    """Add `digits bench model`."""
    parser = subparsers.add_parser("model", help="NumPy vs PyTorch: epoch time, inference")
    parser.add_argument("--arch", choices=["mlp", "cnn"], nargs="+", default=["mlp", "cnn"])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per measurement")
    parser.add_argument("--steps", type=int, default=100, help="training batches per run")
    parser.add_argument("--data", help="data directory (default $DIGITS_DATA_DIR or ./data)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="threads on both sides (BLAS/OpenMP, or NumPy's batch parts); more than one is "
        "only meaningful on an otherwise idle machine (default: %(default)s, as the "
        "service's workers run)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Measure every architecture and write the `model` section."""
    import torch

    # A thread pool that waits for a descheduled thread on a busy machine measures the
    # machine, not the code (measured: 7 ms per MLP step on one thread, 220 ms on two).
    torch.set_num_threads(args.threads)
    x_train, y_train, x_test, _ = data.load_mnist(args.data)
    rows = []
    with threadpool_limits(limits=args.threads):
        for arch in args.arch:
            net = weights_or_build(arch)
            train = time_training(arch, x_train, y_train, args.runs, args.steps, args.threads)
            infer = time_inference(net, x_test, args.runs)
            rows.append((arch, train, infer))
    name, title = "model", "Model: NumPy vs PyTorch CPU"
    if args.threads != 1:  # a separate section: the one-thread numbers stay
        name, title = f"model-{args.threads}-threads", f"{title}, {args.threads} threads"
    write_section(name, title, table(rows, args, torch.__version__))
    return 0


def weights_or_build(arch: str) -> model.Network:
    """Return the shipped network for `arch`, or a fresh one when none is shipped."""
    try:
        shipped = model.load(f"model/weights/{arch}.npz")
    except (FileNotFoundError, model.WeightsError):
        return model.build(arch, seed=0)
    if not isinstance(shipped, model.Network):
        raise SystemExit(f"model/weights/{arch}.npz is not a single network")
    return shipped


def time_training(
    arch: str, x: np.ndarray, y: np.ndarray, runs: int, steps: int, threads: int
) -> dict[str, float]:
    """Return median seconds per epoch for NumPy and PyTorch."""
    numpy_step = numpy_trainer(arch, x, y, threads)
    torch_step = torch_trainer(arch, x, y)
    numpy_step(2)  # warm up both sides: allocations, BLAS threads
    torch_step(2)
    epoch_steps = math.ceil(TRAIN_IMAGES / BATCH)
    numpy_times, torch_times = [], []
    for _ in range(runs):  # interleaved, so machine noise hits both alike
        numpy_times.append(timed(numpy_step, steps) / steps * epoch_steps)
        torch_times.append(timed(torch_step, steps) / steps * epoch_steps)
    return {"numpy": median(numpy_times), "torch": median(torch_times)}


def timed(step: Callable[[int], object], steps: int) -> float:
    started = time.perf_counter()
    step(steps)
    return time.perf_counter() - started


def batches(x: np.ndarray, y: np.ndarray, seed: int) -> Callable[[], tuple[Any, Any]]:
    """Return a function drawing random training batches."""
    rng = np.random.default_rng(seed)

    def draw() -> tuple[Any, Any]:
        index = rng.integers(0, TRAIN_IMAGES, BATCH)
        return x[index], y[index]

    return draw


def numpy_trainer(arch: str, x: np.ndarray, y: np.ndarray, threads: int) -> Callable[[int], None]:
    """Return `step(n)`, running n NumPy training steps."""
    net = model.build(arch, seed=0)
    optimizer = Adam()
    config = TrainConfig(arch=arch, batch_size=BATCH)
    rng = np.random.default_rng(0)
    draw = batches(x, y, 1)

    def step(n: int) -> None:
        with threads_for(net, threads):  # as `digits train` does
            for _ in range(n):
                pixels, labels = draw()
                train_step(net, optimizer, pixels, labels, 1e-3, config, rng)

    return step


def torch_trainer(arch: str, x: np.ndarray, y: np.ndarray) -> Callable[[int], None]:
    """Return `step(n)`, running n PyTorch training steps of the same architecture."""
    import torch

    net = torch_network(model.build(arch, seed=0))
    net.train()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    draw = batches(x, y, 1)

    def step(n: int) -> None:
        for _ in range(n):
            pixels, labels = draw()
            inputs = torch.from_numpy(pixels).float().div_(255)
            loss = loss_fn(net(inputs), torch.from_numpy(labels))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    return step


def time_inference(net: model.Network, x: np.ndarray, runs: int) -> dict[str, float]:
    """Return median images/s for NumPy and PyTorch on the same weights and pixels."""
    import torch

    reference = torch_network(net).eval()

    def torch_proba(pixels: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            inputs = torch.from_numpy(pixels).float().div_(255)
            return torch.softmax(reference(inputs), dim=1).numpy()

    gap = float(np.abs(net.predict_proba(x[:1000]) - torch_proba(x[:1000])).max())
    if gap > 1e-3:
        raise RuntimeError(f"PyTorch copy disagrees with the NumPy network by {gap:.2g}")
    numpy_times, torch_times = [], []
    for _ in range(runs):
        numpy_times.append(timed(lambda _: net.predict_proba(x), 0))
        torch_times.append(timed(lambda _: torch_proba(x), 0))
    return {
        "numpy": len(x) / median(numpy_times),
        "torch": len(x) / median(torch_times),
        "max_gap": gap,
    }


def torch_network(net: model.Network) -> Any:
    """Return a torch.nn.Sequential with the NumPy network's layers and weights."""
    import torch
    from torch import nn

    class NHWC(nn.Module):
        """Reshape raw rows to NCHW images, as the NumPy network reshapes to NHWC."""

        def forward(self, X: torch.Tensor) -> torch.Tensor:
            return X.view(len(X), 1, 28, 28)

    class FlattenNHWC(nn.Module):
        """Flatten in the NumPy network's (h, w, c) order so Dense weights carry over."""

        def forward(self, X: torch.Tensor) -> torch.Tensor:
            return X.permute(0, 2, 3, 1).flatten(1)

    modules: list[nn.Module] = [NHWC()] if len(net.input_shape) == 3 else []
    spatial = len(net.input_shape) == 3
    for layer in net.layers:
        spec, params, buffers = layer.spec(), layer.params, layer.buffers
        kind = spec["type"]
        if kind == "Dense":
            module: nn.Module = nn.Linear(*params["W"].shape)
            copy_into(module, weight=params["W"].T, bias=params["b"])
        elif kind == "Conv2D":
            k, c_in = spec["kernel"], spec["c_in"]
            module = nn.Conv2d(c_in, spec["c_out"], k, padding=spec["padding"])
            kernel = params["W"].reshape(k, k, c_in, -1).transpose(3, 2, 0, 1)
            copy_into(module, weight=kernel, bias=params["b"])
        elif kind == "BatchNorm":
            norm = nn.BatchNorm2d if spatial else nn.BatchNorm1d
            module = norm(spec["n_features"], eps=spec["eps"], momentum=1 - spec["momentum"])
            copy_into(
                module,
                weight=params["gamma"],
                bias=params["beta"],
                running_mean=buffers["mean"],
                running_var=buffers["var"],
            )
        elif kind == "MaxPool2D":
            module = nn.MaxPool2d(2)
        elif kind == "ReLU":
            module = nn.ReLU(inplace=True)
        elif kind == "Dropout":
            module = nn.Dropout(spec["rate"])
        elif kind == "Flatten":
            module, spatial = FlattenNHWC(), False
        else:
            raise ValueError(f"no PyTorch counterpart for layer {kind}")
        modules.append(module)
    return nn.Sequential(*modules)


def copy_into(module: Any, **arrays: np.ndarray) -> None:
    """Overwrite a module's tensors with NumPy arrays of the same shapes."""
    import torch

    with torch.no_grad():
        for name, array in arrays.items():
            getattr(module, name).copy_(torch.from_numpy(np.ascontiguousarray(array)))


Row = tuple[str, dict[str, float], dict[str, float]]


def table(rows: list[Row], args: Any, version: str) -> str:
    """Format the results with their targets."""
    lines = [
        f"PyTorch {version} CPU; {args.threads} thread(s) on both sides (NumPy's CNN trains "
        "on batch parts in threads with one BLAS thread, as `digits train` runs it; its MLP "
        "and inference use BLAS's threads). Training epoch = "
        f"55,000 images, batch {BATCH}, Adam, timed over {args.steps} batches, median of "
        f"{args.runs} runs. Inference = 10,000 uint8 images to probabilities, median of "
        f"{args.runs} runs. Load average at the end: "
        f"{load_average()} (the machine is shared).",
        "",
        "| model | NumPy s/epoch | PyTorch s/epoch | ratio (target) | NumPy img/s "
        "| PyTorch img/s | ratio (target ≥ 1.2) |",
        "|---|---|---|---|---|---|---|",
    ]
    targets = {"mlp": 1.0, "cnn": 1.5}
    for arch, train, infer in rows:
        t_ratio = train["numpy"] / train["torch"]
        i_ratio = infer["numpy"] / infer["torch"]
        t_verdict = "met" if t_ratio <= targets[arch] else "MISSED"
        lines.append(
            f"| {arch} | {train['numpy']:.2f} | {train['torch']:.2f} | "
            f"{t_ratio:.2f} (≤ {targets[arch]}) {t_verdict} | "
            f"{infer['numpy']:,.0f} | {infer['torch']:,.0f} | "
            f"{i_ratio:.2f} {'met' if i_ratio >= 1.2 else 'MISSED'} |"
        )
    return "\n".join(lines)

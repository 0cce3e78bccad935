"""The query pass against training, side by side: forwards/s per layout and lowering.

Part of `python -m experiments.bench.throughput --settings=query` (flags live there). For each
workload (digits 8x8; Fashion-MNIST 28x28 from Debian's IDX files, or digits upsampled to
28x28 when they are absent) it trains a block of models with the engine, then times the
query pass of that block under several `QueryLayout`s and the training epochs again,
alternately, `rounds` times. Reported: training examples/s (IN examples per epoch / epoch
seconds, from the engine's own progress callback, so init and compilation are excluded),
query forwards/s (models x examples x queries / seconds of a whole `query_logits` call,
host copy of the result included), their ratio, and the largest difference from the
default layout's logits (a check that every layout computes the same thing).
"""

from __future__ import annotations

import dataclasses
import os
import time

import jax
import numpy as np

from experiments.bench.tables import table
from lira_jax.data import augment, keep_mask, load_dataset
from lira_jax.data.datasets import DatasetError
from lira_jax.train import (
    Engine,
    QueryLayout,
    TrainConfig,
    query_conv_impl,
    query_layout,
    query_logits,
)
from lira_jax.train import engine as engine_lib


@dataclasses.dataclass(frozen=True)
class Workload:
    name: str
    x: np.ndarray
    y: np.ndarray
    batch_size: int
    augment_shift: int


def workloads(fashion_dir: str | None, fashion_examples: int) -> list[Workload]:
    """Digits 8x8 (the 1,500-example pool) and a 28x28 one (see the module docstring)."""
    digits = load_dataset("digits")
    out = [Workload("digits 8x8", digits.x_train, digits.y_train, 128, 1)]
    try:
        fm = load_dataset("fashion_mnist_idx", fashion_dir, fashion_examples)
        out.append(Workload("Fashion-MNIST 28x28", fm.x_train, fm.y_train, 256, 2))
    except DatasetError:
        x = np.asarray(
            jax.image.resize(digits.x_train, (digits.x_train.shape[0], 28, 28, 1), "bilinear")
        )
        out.append(Workload("digits upsampled to 28x28", x, digits.y_train, 256, 2))
    return out


def layouts_for(image_shape) -> list[tuple[str, QueryLayout]]:
    """The layouts compared: the original one (one forward of 1,024 examples), the default,
    and alternatives."""
    default = query_layout()
    conv = query_conv_impl(default.conv_impl, jax.default_backend(), image_shape)
    small = image_shape[0] * image_shape[1] < 16 * 16
    out = [
        ("before: patches, one forward of 1024 examples x A", QueryLayout("patches", 1024, 1024)),
        (f"**default**: {conv}, forwards of {default.examples_per_forward} examples x A", default),
    ]
    for impl, per_forward in (
        [("patches", 16), ("patches", 64), ("patches", 128), ("lax", 32)]
        if small
        else [("patches", 32), ("lax", 64), ("lax", 128)]
    ):
        label = f"{impl}, forwards of {per_forward} examples x A"
        out.append((label, QueryLayout(impl, per_forward, 1024)))
    return out


def run(
    out: list[str],
    *,
    num_models: int = 8,
    epochs: int = 3,
    rounds: int = 3,
    fashion_dir: str | None = None,
    fashion_examples: int = 4096,
    queries: str = "cross1",
) -> dict:
    """Runs the comparison; appends Markdown tables to `out`; returns {workload: rows}."""
    results = {}
    for w in workloads(fashion_dir, fashion_examples):
        n = w.x.shape[0]
        keep = keep_mask(0, num_models, n, 0.5)
        config = TrainConfig(
            arch="cnn32",
            num_classes=10,
            epochs=epochs,
            batch_size=w.batch_size,
            learning_rate=0.05,
            warmup_epochs=1.0,
            augment_shift=w.augment_shift,
        )
        engine = Engine(config, w.x, w.y, engine_lib.steps_per_epoch(keep, w.batch_size))
        qs = augment.query_set(queries, False)
        params = engine.train(np.arange(num_models), keep)  # compiles; trained models
        layouts = layouts_for(w.x.shape[1:])
        reference = None
        diffs = {}
        for label, layout in layouts:  # compile each layout once, untimed
            logits = query_logits(engine.model, params, engine.x, qs, layout=layout)
            if reference is None:
                reference = logits
            diffs[label] = float(np.abs(logits - reference).max())
        train_rates, query_rates = [], {label: [] for label, _ in layouts}
        load0 = os.getloadavg()
        for r in range(rounds):
            order = layouts if r % 2 == 0 else layouts[::-1]
            if r % 2 == 1:
                train_rates.append(_train_rate(engine, keep))
            for label, layout in order:
                t = time.perf_counter()
                query_logits(engine.model, params, engine.x, qs, layout=layout)
                seconds = time.perf_counter() - t
                query_rates[label].append(num_models * n * len(qs) / seconds)
            if r % 2 == 0:
                train_rates.append(_train_rate(engine, keep))
        load1 = os.getloadavg()
        train = float(np.median(train_rates))
        rows = []
        for label, _ in layouts:
            rate = float(np.median(query_rates[label]))
            rows.append(
                [
                    label,
                    " / ".join(f"{v:,.0f}" for v in query_rates[label]),
                    f"{rate:,.0f}",
                    f"{rate / train:.2f}x",
                    f"{diffs[label]:.1e}",
                ]
            )
        out.append(
            f"\n#### Query pass vs training: {w.name}, N={n}, {num_models} cnn32 models, "
            f"{len(qs)} queries ({queries}), {jax.local_device_count()} CPU devices\n"
        )
        out.append(
            f"Training (engine, batch {w.batch_size}, epochs {epochs}): "
            f"{' / '.join(f'{v:,.0f}' for v in train_rates)} examples/s per round, median "
            f"**{train:,.0f}**. Load average {' / '.join(f'{v:.2f}' for v in load0)} at the "
            f"start, {' / '.join(f'{v:.2f}' for v in load1)} at the end.\n"
        )
        out.append(
            table(
                rows,
                [
                    "query layout",
                    "forwards/s per round",
                    "median",
                    "vs training ex/s",
                    "max |diff|",
                ],
            )
        )
        results[w.name] = {"train": train, "query": {k: v for k, v in query_rates.items()}}
    return results


def _train_rate(engine: Engine, keep: np.ndarray) -> float:
    """Median examples/s over the epochs of one `Engine.train` call of the block."""
    rates = []
    progress = lambda stats: rates.append(stats["examples_per_second"])
    engine.train(np.arange(keep.shape[0]), keep, progress=progress)
    return float(np.median(rates))

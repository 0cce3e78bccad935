"""The multi-model engine: trains a block of models at once with `jax.vmap`.

Design notes:
- Everything a model does is a pure function of (config, its global model index,
  its keep row). Keys derive from the seed with `fold_in(key, model_index)`, so a
  model trained inside a block of 64 equals the same model trained alone, and any
  process can train any model range.
- A single model's epoch is written once (`_model_epoch`, a `lax.scan` over
  steps) and vmapped over the models axis; the whole epoch runs in one `jit`
  call. The Python loop is over epochs only (for progress reports).
- Each model only runs on its own examples: its epoch order puts its IN examples
  first, in a random order drawn from its key, and the epoch takes
  `steps_per_epoch * batch_size` indices from it. `steps_per_epoch` is fixed by
  the model with the most IN examples, so every model runs the same number of
  steps; positions past a model's own IN count get weight 0 (a few per epoch),
  and a step whose batch is all padding leaves the model unchanged.
- The dataset lives on the device once; batches are gathered from it.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from lira_jax.data import augment
from lira_jax.models import get_model

PyTree = Any

# Streams of the per-model keys, folded in before the model index.
_INIT_STREAM, _DATA_STREAM = 0, 1


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters shared by every model of a run.

    Attributes:
      arch: model name (see `lira_jax.models.arch_names()`).
      num_classes: number of classes.
      epochs: training epochs.
      batch_size: examples per step, per model.
      learning_rate: peak learning rate of the warm-up + cosine schedule.
      momentum: SGD momentum.
      weight_decay: decoupled L2 added to the gradient (as `optax.add_decayed_weights`).
      warmup_epochs: linear warm-up length.
      augment_shift: largest random shift in pixels (0: none).
      augment_mirror: random horizontal flips.
      seed: the run's seed; every key derives from it.
      conv_impl: "auto", "patches" or "lax" (see `lira_jax.models.layers`).
    """

    arch: str
    num_classes: int
    epochs: int = 20
    batch_size: int = 128
    learning_rate: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    augment_shift: int = 1
    augment_mirror: bool = False
    seed: int = 0
    conv_impl: str = "auto"

    def validate(self) -> None:
        for name in ("epochs", "batch_size", "num_classes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1.")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate={self.learning_rate} must be > 0.")
        if self.augment_shift < 0:
            raise ValueError(f"augment_shift={self.augment_shift} must be >= 0.")


def model_keys(seed: int, model_indices: np.ndarray, stream: int) -> jax.Array:
    """[B] keys for the given global model indices."""
    base = jax.random.fold_in(jax.random.PRNGKey(seed), stream)
    return jax.vmap(lambda m: jax.random.fold_in(base, m))(jnp.asarray(model_indices))


def steps_per_epoch(keep: np.ndarray, batch_size: int) -> int:
    """Steps per epoch for every model of the run: set by the largest IN count in `keep` [M, N]."""
    return max(1, math.ceil(int(keep.sum(1).max()) / batch_size))


class Engine:
    """Trains blocks of models that share a `TrainConfig`, dataset and step count.

    Args:
      config: the run's `TrainConfig`.
      x_train: [N, H, W, C] float32, the membership pool.
      y_train: [N] int labels the models train on.
      steps: steps per epoch (`steps_per_epoch(keep, batch_size)` of the whole run).
    """

    def __init__(self, config: TrainConfig, x_train: np.ndarray, y_train: np.ndarray, steps: int):
        config.validate()
        self.config = config
        self.model: nn.Module = get_model(config.arch, config.num_classes, config.conv_impl)
        self.steps = int(steps)
        self.x = jnp.asarray(x_train)
        self.y = jnp.asarray(y_train, dtype=jnp.int32)
        total = config.epochs * self.steps
        schedule = optax.warmup_cosine_decay_schedule(
            0.0, config.learning_rate, min(int(config.warmup_epochs * self.steps), total - 1), total
        )
        self.optimizer = optax.chain(
            optax.add_decayed_weights(config.weight_decay),
            optax.sgd(schedule, momentum=config.momentum),
        )
        self._init = jax.jit(jax.vmap(self._init_one))
        self._epoch = jax.jit(jax.vmap(self._model_epoch, in_axes=(0, 0, 0, 0, None)))

    # -- one model (pure; vmapped above) --------------------------------------
    def _init_one(self, key: jax.Array) -> tuple[PyTree, PyTree]:
        params = self.model.init(key, self.x[:1])
        return params, self.optimizer.init(params)

    def _loss(self, params, x, y, w):
        logits = self.model.apply(params, x)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, y)
        denom = jnp.maximum(w.sum(), 1.0)
        correct = (jnp.argmax(logits, -1) == y) * w
        return (ce * w).sum() / denom, correct.sum()

    def _model_epoch(self, params, opt_state, data_key, keep_row, epoch):
        """One epoch of one model. keep_row: [N] bool. Returns (params, opt_state, stats)."""
        cfg, n = self.config, self.x.shape[0]
        span = self.steps * cfg.batch_size
        epoch_key = jax.random.fold_in(data_key, epoch)
        order_key, aug_key = jax.random.split(epoch_key)
        u = jax.random.uniform(order_key, (n,))
        order = jnp.argsort(jnp.where(keep_row, u, u + 2.0))  # own examples first, shuffled
        if span > n:
            order = jnp.concatenate([order, jnp.zeros(span - n, order.dtype)])
        idx = order[:span].reshape(self.steps, cfg.batch_size)
        weight = (jnp.arange(span) < keep_row.sum()).astype(jnp.float32)
        weight = weight.reshape(self.steps, cfg.batch_size)

        def step(carry, inputs):
            params, opt_state = carry
            step_idx, batch_idx, w = inputs
            x = augment.random_augment(
                jax.random.fold_in(aug_key, step_idx),
                self.x[batch_idx],
                cfg.augment_shift,
                cfg.augment_mirror,
            )
            (loss, correct), grads = jax.value_and_grad(self._loss, has_aux=True)(
                params, x, self.y[batch_idx], w
            )
            updates, new_opt = self.optimizer.update(grads, opt_state, params)
            new_params = optax.apply_updates(params, updates)
            has_data = w.sum() > 0
            keep_old = lambda new, old: jnp.where(has_data, new, old)
            params = jax.tree.map(keep_old, new_params, params)
            opt_state = jax.tree.map(keep_old, new_opt, opt_state)
            return (params, opt_state), (loss * w.sum(), correct)

        (params, opt_state), (loss_sums, correct) = jax.lax.scan(
            step, (params, opt_state), (jnp.arange(self.steps), idx, weight)
        )
        seen = jnp.maximum(weight.sum(), 1.0)
        return params, opt_state, {"loss": loss_sums.sum() / seen, "accuracy": correct.sum() / seen}

    # -- a block of models ----------------------------------------------------
    def init(self, model_indices: np.ndarray) -> tuple[PyTree, PyTree]:
        """Stacked params and optimizer states for the given global model indices."""
        return self._init(model_keys(self.config.seed, model_indices, _INIT_STREAM))

    def train(
        self,
        model_indices: np.ndarray,
        keep_rows: np.ndarray,
        progress: Callable[[dict], None] | None = None,
    ) -> PyTree:
        """Trains models `model_indices` (their keep rows [B, N]) from scratch.

        Args:
          model_indices: [B] global model indices (seed keys derive from them).
          keep_rows: [B, N] bool, the rows of the run's keep mask for those models.
          progress: optional callback, called after each epoch with a dict
            (epoch, loss [B], accuracy [B], examples_per_second).

        Returns:
          Stacked params, leading axis B.
        """
        model_indices = np.asarray(model_indices)
        keep_rows = jnp.asarray(keep_rows, dtype=bool)
        params, opt_state = self.init(model_indices)
        data_keys = model_keys(self.config.seed, model_indices, _DATA_STREAM)
        for epoch in range(self.config.epochs):
            start = time.perf_counter()
            params, opt_state, stats = self._epoch(params, opt_state, data_keys, keep_rows, epoch)
            if progress is not None:
                jax.block_until_ready(stats)
                seconds = time.perf_counter() - start
                examples = float(keep_rows.sum())
                progress(
                    {
                        "epoch": epoch + 1,
                        "loss": np.asarray(stats["loss"]),
                        "accuracy": np.asarray(stats["accuracy"]),
                        "examples_per_second": examples / max(seconds, 1e-9),
                    }
                )
        return params


def query_logits(
    model: nn.Module,
    params: PyTree,
    x: np.ndarray,
    queries: tuple[augment.Query, ...],
    chunk: int = 1024,
) -> np.ndarray:
    """Logits of every model on every example under every query.

    Args:
      model: the flax module.
      params: stacked params, leading axis B.
      x: [N, H, W, C] examples.
      queries: the fixed query set (A queries).
      chunk: examples per device call.

    Returns:
      [B, N, A, C] float32 numpy array.
    """

    @jax.jit
    def run(params, xb):
        views = jnp.stack([augment.apply_query(xb, q) for q in queries])  # [A, n, ...]
        flat = views.reshape((-1,) + xb.shape[1:])
        out = jax.vmap(lambda p: model.apply(p, flat))(params)  # [B, A*n, C]
        return out.reshape(out.shape[0], len(queries), xb.shape[0], -1).transpose(0, 2, 1, 3)

    parts = []
    for s in range(0, x.shape[0], chunk):
        xb = x[s : s + chunk]
        if xb.shape[0] < chunk and x.shape[0] > chunk:  # pad the tail: one compiled shape
            pad = np.concatenate([xb, np.zeros((chunk - xb.shape[0],) + xb.shape[1:], xb.dtype)])
            parts.append(np.asarray(run(params, pad))[:, : xb.shape[0]])
        else:
            parts.append(np.asarray(run(params, xb)))
    return np.concatenate(parts, axis=1).astype(np.float32)

"""The multi-model engine: trains a block of models at once, sharded over local devices.

Design notes:
- Everything a model does is a pure function of (config, its global model index,
  its keep row). Keys derive from the seed with `fold_in(key, model_index)`, so a
  model trained inside a block of 64, on any number of devices, equals the same model
  trained alone, and any process can train any model range.
- A single model's epoch is written once (`_model_epoch`, a `lax.scan` over
  steps); the whole epoch of a block runs in one `jit` call. The Python loop is over
  epochs only (for progress reports).
- Layout of a block (execution only; what a model computes does not depend on it beyond
  float reassociation): the models axis is split over the devices of a 1-D mesh with axis
  "models" (`jax.shard_map`; the dataset is replicated on every device, nothing is
  communicated). On each device, `model_chunk` models are vmapped together and `lax.map`
  loops over the chunks. On CPU one model at a time is fastest (measured: XLA's CPU
  backend runs the batched matmuls of a vmap slower than the same matmuls alone, and the
  activations of several models fall out of cache), so there the speed comes from the
  lowering (`layers`: im2col matmuls, reshape pooling) and from running whole epochs of
  whole blocks in one compiled call. On GPUs the device's whole share is vmapped at once.
  A block whose size is not a multiple of the device count is padded with copies of its
  last model, which are trained and dropped.
- Each model only runs on its own examples: its epoch order puts its IN examples
  first, in a random order drawn from its key, and the epoch takes
  `steps_per_epoch * batch_size` indices from it. `steps_per_epoch` is fixed by
  the model with the most IN examples, so every model runs the same number of
  steps; positions past a model's own IN count get weight 0 (the only forward/backward
  work spent on examples a model does not train on), and a step whose batch is all
  padding leaves the model unchanged (and, one model at a time, is skipped: `lax.cond`).
- Mixed precision: `compute_dtype="bfloat16"` casts the params and the batch to bfloat16
  for the forward and backward pass; params, optimizer state, the loss and its reduction
  stay float32 (the gradient of the cast returns float32 gradients). Queries always run
  in float32.
- The dataset lives on the device once; batches are gathered from it. Labels are per
  model ([B, N] rows, sharded with the models): with canaries or label-DP every model trains
  on its own labels (`lira_jax.data.membership.model_labels`); by default every row is the
  dataset's labels.
- DP-SGD (`TrainConfig.dp_noise_multiplier` set) is a separate code path
  (`_dp_model_epoch`, `lira_jax.train.dpsgd`): Poisson-sampled batches with q =
  1 / steps_per_epoch, per-example gradients clipped and noised (jax-privacy's
  `clip_pytree` and `gaussian_privatizer`, inside the per-model function); every step
  runs, empty or not. With it off, plain training is exactly what it was.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from lira_jax import failpoints
from lira_jax.data import augment
from lira_jax.models import get_model
from lira_jax.train import dpsgd
from lira_jax.train.sharding import MESH_AXIS, models_mesh, pad_models, padded_size

PyTree = Any

# Streams of the per-model keys, folded in before the model index.
_INIT_STREAM, _DATA_STREAM = 0, 1

COMPUTE_DTYPES = ("float32", "bfloat16")


@dataclasses.dataclass(frozen=True)
class BackendDefaults:
    """Execution choices per backend, measured with `experiments/bench/throughput.py`.

    Attributes:
      model_chunk: models vmapped together on one device (None: all of the device's share).
      models_per_device: preferred block size per device when memory allows.
      memory_fraction: share of a device's memory a block may plan to use.
    """

    model_chunk: int | None
    models_per_device: int
    memory_fraction: float


# CPU (2 cores, jax 0.10, cnn32 on 8x8 and 28x28 inputs, docs/benchmarks.md): one model at
# a time is fastest (digits: 1.3-1.7x a vmap over 4 to 32 models; batched matmuls run slower
# than the same matmuls alone, and several models' activations fall out of cache); with one
# CPU device per core (`sharding.use_cpu_cores_as_devices`), blocks past 16 models per
# device gain nothing. GPU/TPU values are not measured here: the whole device share is
# vmapped (one kernel per layer for all models), as many models as fit in half the memory,
# up to 256 per device.
BACKEND_DEFAULTS = {
    "cpu": BackendDefaults(model_chunk=1, models_per_device=16, memory_fraction=0.25),
    "gpu": BackendDefaults(model_chunk=None, models_per_device=256, memory_fraction=0.5),
    "tpu": BackendDefaults(model_chunk=None, models_per_device=256, memory_fraction=0.5),
}


def backend_defaults(backend: str | None = None) -> BackendDefaults:
    """The `BackendDefaults` of `backend` (default: JAX's default backend)."""
    backend = backend or jax.default_backend()
    return BACKEND_DEFAULTS.get(backend, BACKEND_DEFAULTS["gpu"])


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
      compute_dtype: "float32" or "bfloat16" (mixed precision: float32 params and
        optimizer state, bfloat16 forward/backward). Changes the trained models.
      dp_noise_multiplier: σ of DP-SGD (None: plain SGD); the noise's standard deviation is
        σ·dp_clip_norm per coordinate.
      dp_clip_norm: C, the L2 norm each example's gradient is clipped to (DP-SGD only).
      dp_delta: δ the privacy spent is reported at (DP-SGD only; see
        `lira_jax.train.accounting`).
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
    compute_dtype: str = "float32"
    dp_noise_multiplier: float | None = None
    dp_clip_norm: float | None = None
    dp_delta: float | None = None

    @classmethod
    def from_run_config(cls, config: dict, num_classes: int, **execution) -> TrainConfig:
        """The engine config of a run config (`experiments.train_shadows.make_config`; the
        keys that are off may be absent). `execution`: conv_impl, compute_dtype."""
        return cls(
            arch=config["arch"],
            num_classes=num_classes,
            epochs=config["epochs"],
            batch_size=config["batch_size"],
            learning_rate=config["learning_rate"],
            momentum=config["momentum"],
            weight_decay=config["weight_decay"],
            warmup_epochs=config["warmup_epochs"],
            augment_shift=config["augment_shift"],
            augment_mirror=config["augment_mirror"],
            seed=config["seed"],
            dp_noise_multiplier=config.get("dp_noise_multiplier"),
            dp_clip_norm=config.get("dp_clip_norm"),
            dp_delta=config.get("dp_delta"),
            **execution,
        )

    @property
    def dp(self) -> bool:
        """Whether this is a DP-SGD run."""
        return self.dp_noise_multiplier is not None

    def validate(self) -> None:
        for name in ("epochs", "batch_size", "num_classes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1.")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate={self.learning_rate} must be > 0.")
        if self.augment_shift < 0:
            raise ValueError(f"augment_shift={self.augment_shift} must be >= 0.")
        if self.compute_dtype not in COMPUTE_DTYPES:
            raise ValueError(
                f"compute_dtype={self.compute_dtype!r}; choose one of {COMPUTE_DTYPES}."
            )
        dpsgd.check_dp_settings(self.dp_noise_multiplier, self.dp_clip_norm, self.dp_delta)


def model_keys(seed: int, model_indices: np.ndarray, stream: int) -> jax.Array:
    """[B] keys for the given global model indices."""
    return _model_keys(seed, jnp.asarray(model_indices), stream)


@jax.jit
def _model_keys(seed, model_indices, stream):
    base = jax.random.fold_in(jax.random.PRNGKey(seed), stream)
    return jax.vmap(lambda m: jax.random.fold_in(base, m))(model_indices)


@functools.partial(jax.jit, static_argnums=1)
def _first(tree: PyTree, b: int) -> PyTree:
    """The first `b` models of a stacked pytree (drops a block's padding models)."""
    return jax.tree.map(lambda p: p[:b], tree)


def epoch_batches(
    data_key: jax.Array, keep_row: jax.Array, epoch, steps: int, batch_size: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One model's batches of one epoch: a pure function of (data key, keep row, epoch).

    The model's own (IN) examples come first, in a random order drawn from
    `fold_in(data_key, epoch)`, then padding slots of weight 0; OUT examples never appear
    in a weighted slot. The same on every backend, device count and block layout.

    Args:
      data_key: the model's data key (`model_keys(seed, [m], stream=data)`).
      keep_row: [N] bool, the model's row of the keep mask.
      epoch: 0-based epoch index (int or int32 scalar).
      steps, batch_size: the epoch's shape (`steps_per_epoch`, the batch size).

    Returns:
      (idx [steps, batch_size] int32 example indices, weight [steps, batch_size] float32
      1 for the model's examples and 0 for padding, augmentation key of the epoch).
    """
    n = keep_row.shape[0]
    span = steps * batch_size
    order_key, aug_key = jax.random.split(jax.random.fold_in(data_key, epoch))
    u = jax.random.uniform(order_key, (n,))
    order = jnp.argsort(jnp.where(keep_row, u, u + 2.0))  # own examples first, shuffled
    if span > n:
        order = jnp.concatenate([order, jnp.zeros(span - n, order.dtype)])
    idx = order[:span].reshape(steps, batch_size)
    weight = (jnp.arange(span) < keep_row.sum()).astype(jnp.float32)
    return idx, weight.reshape(steps, batch_size), aug_key


def steps_per_epoch(keep: np.ndarray, batch_size: int) -> int:
    """Steps per epoch for every model of the run: set by the largest IN count in `keep` [M, N]."""
    return max(1, math.ceil(int(keep.sum(1).max()) / batch_size))


def _resolve_chunk(model_chunk: int | None, backend: str) -> int | None:
    if model_chunk is None:
        return backend_defaults(backend).model_chunk
    if model_chunk < 0:
        raise ValueError(f"model_chunk={model_chunk} must be >= 1, or 0 for a full vmap.")
    return None if model_chunk == 0 else int(model_chunk)


def map_models(fn: Callable, args: PyTree, chunk: int | None) -> PyTree:
    """Applies `fn` to each model of `args` (leading models axis), `chunk` models at a time.

    `chunk` None (or >= the number of models B) vmaps all models at once; 1 runs them one
    after another (`lax.map`, no batching at all); otherwise `lax.map` over groups of k
    vmapped models, k the largest divisor of B that is <= `chunk` (a remainder group would
    compile the whole body a second time).
    """
    b = jax.tree.leaves(args)[0].shape[0]
    if chunk is None or chunk >= b:
        return jax.vmap(fn)(args)
    k = max(d for d in range(1, chunk + 1) if b % d == 0)
    if k == 1:
        return jax.lax.map(fn, args)
    return jax.lax.map(fn, args, batch_size=k)


def tree_bytes(tree: PyTree) -> int:
    """Bytes of the arrays (or `ShapeDtypeStruct`s) of a pytree."""
    return sum(int(np.prod(a.shape)) * np.dtype(a.dtype).itemsize for a in jax.tree.leaves(tree))


class Engine:
    """Trains blocks of models that share a `TrainConfig`, dataset and step count.

    Args:
      config: the run's `TrainConfig`.
      x_train: [N, H, W, C] float32, the membership pool.
      y_train: [N] int labels the models train on.
      steps: steps per epoch (`steps_per_epoch(keep, batch_size)` of the whole run).
      devices: devices the models axis is sharded over (default: all local devices).
      model_chunk: models vmapped together per device (None: the backend's default, see
        `BACKEND_DEFAULTS`; 0: all of a device's share; 1: one model at a time).
    """

    def __init__(
        self,
        config: TrainConfig,
        x_train: np.ndarray,
        y_train: np.ndarray,
        steps: int,
        *,
        devices: Sequence[jax.Device] | None = None,
        model_chunk: int | None = None,
    ):
        config.validate()
        self.config = config
        tabular = np.ndim(x_train) == 2
        if tabular:
            augment.check_tabular("identity", config.augment_shift, config.augment_mirror)
        self.model: nn.Module = get_model(
            config.arch, config.num_classes, config.conv_impl, tabular=tabular
        )
        self.steps = int(steps)
        self.mesh = models_mesh(devices)
        self.num_devices = self.mesh.devices.size
        backend = self.mesh.devices.flat[0].platform
        self.model_chunk = _resolve_chunk(model_chunk, backend)
        self.compute_dtype = jnp.dtype(config.compute_dtype)
        replicated = NamedSharding(self.mesh, P())
        self._models_sharding = NamedSharding(self.mesh, P(MESH_AXIS))
        self.x = jax.device_put(jnp.asarray(x_train, jnp.float32), replicated)
        self.y = jax.device_put(jnp.asarray(y_train, dtype=jnp.int32), replicated)
        total = config.epochs * self.steps
        schedule = optax.warmup_cosine_decay_schedule(
            0.0, config.learning_rate, min(int(config.warmup_epochs * self.steps), total - 1), total
        )
        self.optimizer = optax.chain(
            optax.add_decayed_weights(config.weight_decay),
            optax.sgd(schedule, momentum=config.momentum),
        )
        if config.dp:
            self.dp_sampling_probability = dpsgd.sampling_probability(self.steps)
            self.dp_max_batch = dpsgd.max_batch_size(config.batch_size)
            self.dp_noise_multiplier = config.dp_noise_multiplier
            if failpoints.planted("dp_noise_off"):
                logging.warning(
                    "PLANTED BUG %s=dp_noise_off: DP-SGD adds NO noise although the config "
                    "claims noise multiplier %g (for audit tests only).",
                    failpoints.BUG_ENV_VAR,
                    config.dp_noise_multiplier,
                )
                self.dp_noise_multiplier = 0.0
        self._compiled: dict[int, jax.stages.Compiled] = {}
        models, rep = P(MESH_AXIS), P()
        # Init runs once per block: compile it fast rather than well (one model at a time,
        # and on CPU without LLVM optimisation: 1 s instead of 4-7 s of compiling the
        # initialisers' random-number code; values equal to float rounding).
        self._init = jax.jit(
            jax.shard_map(
                lambda keys: map_models(self._init_one, keys, 1),
                mesh=self.mesh,
                in_specs=models,
                out_specs=models,
                check_vma=False,  # no collectives: nothing to check
            ),
            compiler_options={"xla_backend_optimization_level": 0} if backend == "cpu" else None,
        )
        self._epoch = jax.jit(
            jax.shard_map(
                self._local_epoch,
                mesh=self.mesh,
                in_specs=(models, models, models, models, models, rep, rep),
                out_specs=models,
                check_vma=False,  # no collectives: nothing to check
            )
        )

    # -- one model (pure; mapped over the models axis below) ---------------------
    def _init_one(self, key: jax.Array) -> tuple[PyTree, PyTree]:
        params = self.model.init(key, jnp.zeros((1,) + self.x.shape[1:], jnp.float32))
        return params, self.optimizer.init(params)

    def _loss(self, params, x, y, w):
        if self.compute_dtype != jnp.float32:
            params = jax.tree.map(lambda p: p.astype(self.compute_dtype), params)
            x = x.astype(self.compute_dtype)
        logits = self.model.apply(params, x).astype(jnp.float32)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, y)
        denom = jnp.maximum(w.sum(), 1.0)
        correct = (jnp.argmax(logits, -1) == y) * w
        return (ce * w).sum() / denom, correct.sum()

    def _model_epoch(self, params, opt_state, data_key, keep_row, y_all, epoch, x_all):
        """One epoch of one model. keep_row: [N] bool; y_all: [N] its labels.

        Returns (params, opt_state, stats)."""
        if self.config.dp:
            return self._dp_model_epoch(params, opt_state, data_key, keep_row, y_all, epoch, x_all)
        cfg = self.config
        idx, weight, aug_key = epoch_batches(data_key, keep_row, epoch, self.steps, cfg.batch_size)

        def train_step(carry, step_idx, batch_idx, w):
            params, opt_state = carry
            x = augment.random_augment(
                jax.random.fold_in(aug_key, step_idx),
                x_all[batch_idx],
                cfg.augment_shift,
                cfg.augment_mirror,
            )
            (loss, correct), grads = jax.value_and_grad(self._loss, has_aux=True)(
                params, x, y_all[batch_idx], w
            )
            updates, opt_state = self.optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), (loss * w.sum(), correct)

        def step(carry, inputs):
            step_idx, batch_idx, w = inputs
            # A step whose batch is all padding leaves the model as it is. Unbatched (one
            # model at a time, the CPU layout) `cond` skips its computation; under vmap it
            # becomes a select of both branches.
            return jax.lax.cond(
                w.sum() > 0,
                lambda c: train_step(c, step_idx, batch_idx, w),
                lambda c: (c, (jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32))),
                carry,
            )

        (params, opt_state), (loss_sums, correct) = jax.lax.scan(
            step, (params, opt_state), (jnp.arange(self.steps), idx, weight)
        )
        seen = jnp.maximum(weight.sum(), 1.0)
        return params, opt_state, {"loss": loss_sums.sum() / seen, "accuracy": correct.sum() / seen}

    # -- DP-SGD: one model's epoch (a separate path; see `dpsgd`) -------------------------
    def _dp_example_loss(self, params, x, y):
        """Loss and correctness of ONE example (x without batch axis), for per-example grads."""
        if self.compute_dtype != jnp.float32:
            params = jax.tree.map(lambda p: p.astype(self.compute_dtype), params)
            x = x.astype(self.compute_dtype)
        logits = self.model.apply(params, x[None]).astype(jnp.float32)[0]
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, y)
        return ce, (jnp.argmax(logits) == y).astype(jnp.float32)

    def _dp_model_epoch(self, params, opt_state, data_key, keep_row, y_all, epoch, x_all):
        """One DP-SGD epoch of one model: `steps` Poisson-sampled steps, each of which runs
        (and adds noise) even when its sample is empty."""
        cfg = self.config

        def step(carry, step_idx):
            params, opt_state = carry
            sample_key, noise_key, aug_key = dpsgd.step_keys(data_key, epoch, step_idx)
            idx, w, truncated = dpsgd.poisson_batch(
                sample_key, keep_row, self.dp_sampling_probability, self.dp_max_batch
            )
            x = augment.random_augment(aug_key, x_all[idx], cfg.augment_shift, cfg.augment_mirror)
            grads, stats = dpsgd.noisy_gradient(
                self._dp_example_loss,
                params,
                x,
                y_all[idx],
                w,
                noise_key,
                clip_norm=cfg.dp_clip_norm,
                noise_multiplier=self.dp_noise_multiplier,
                denominator=float(cfg.batch_size),
            )
            updates, opt_state = self.optimizer.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            return (params, opt_state), (stats["loss"], stats["aux"], w.sum(), truncated)

        (params, opt_state), (loss, correct, seen, truncated) = jax.lax.scan(
            step, (params, opt_state), jnp.arange(self.steps)
        )
        seen = jnp.maximum(seen.sum(), 1.0)
        stats = {
            "loss": loss.sum() / seen,
            "accuracy": correct.sum() / seen,
            "dp_truncated": truncated.sum(),
        }
        return params, opt_state, stats

    def _local_epoch(self, params, opt_state, data_keys, keep_rows, label_rows, epoch, x_all):
        """One epoch of one device's share of a block (inside `shard_map`)."""
        one = lambda a: self._model_epoch(*a, epoch, x_all)
        args = (params, opt_state, data_keys, keep_rows, label_rows)
        return map_models(one, args, self.model_chunk)

    # -- a block of models ----------------------------------------------------
    def padded_size(self, num_models: int) -> int:
        """Block size after padding to a multiple of the device count."""
        return padded_size(num_models, self.num_devices)

    def _on_mesh(self, a) -> jax.Array:
        return jax.device_put(a, self._models_sharding)

    def compile(self, num_models: int) -> jax.stages.Compiled:
        """The compiled epoch for a block of `num_models` models (cached per padded size).

        Training compiles on first use; calling this first separates compile time from
        training time and gives XLA's `memory_analysis()` of the block (benchmark).
        """
        size = self.padded_size(num_models)
        if size not in self._compiled:
            models = self._models_sharding
            keys = jax.ShapeDtypeStruct((size, 2), jnp.uint32, sharding=models)
            state = jax.eval_shape(self._init, keys)
            state = jax.tree.map(
                lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=models), state
            )
            keep = jax.ShapeDtypeStruct((size, self.x.shape[0]), jnp.bool_, sharding=models)
            labels = jax.ShapeDtypeStruct((size, self.x.shape[0]), jnp.int32, sharding=models)
            epoch = jax.ShapeDtypeStruct((), jnp.int32, sharding=NamedSharding(self.mesh, P()))
            lowered = self._epoch.lower(*state, keys, keep, labels, epoch, self.x)
            self._compiled[size] = lowered.compile()
        return self._compiled[size]

    def unpad(self, tree: PyTree, num_models: int) -> PyTree:
        """The first `num_models` models of a padded block's stacked pytree."""
        size = jax.tree.leaves(tree)[0].shape[0]
        return tree if size == num_models else _first(tree, int(num_models))

    def init(self, model_indices: np.ndarray) -> tuple[PyTree, PyTree]:
        """Stacked params and optimizer states for the given global model indices.

        Returns arrays sharded over the mesh, with a leading axis padded to
        `padded_size(len(model_indices))` (copies of the last model).
        """
        indices = pad_models(np.asarray(model_indices), self.padded_size(len(model_indices)))
        return self._init(self._on_mesh(model_keys(self.config.seed, indices, _INIT_STREAM)))

    def train(
        self,
        model_indices: np.ndarray,
        keep_rows: np.ndarray,
        progress: Callable[[dict], None] | None = None,
        checkpointer: Any = None,
        label_rows: np.ndarray | None = None,
    ) -> PyTree:
        """Trains models `model_indices` (their keep rows [B, N]) from scratch or a checkpoint.

        Args:
          model_indices: [B] global model indices (seed keys derive from them).
          keep_rows: [B, N] bool, the rows of the run's keep mask for those models.
          progress: optional callback, called after each epoch with a dict
            (epoch, loss [B], accuracy [B], examples_per_second, seconds; with DP-SGD also
            dp_truncated [B], the sampled examples that did not fit a batch, see `dpsgd`).
          checkpointer: optional `lira_jax.train.checkpoint.BlockCheckpointer` of this
            block: training resumes after its latest saved epoch and saves as it goes.
            Every random choice of an epoch derives from (model key, epoch), so a resumed
            block ends exactly where an uninterrupted one does.
          label_rows: [B, N] int labels each model trains on (the `train_labels` rows of
            `lira_jax.data.membership.model_labels`); None: the engine's `y_train` for all.

        Returns:
          Stacked params, leading axis B.

        Raises:
          ValueError: `keep_rows` or `label_rows` does not have shape [B, N], or labels
            outside [0, num_classes).
        """
        model_indices = np.asarray(model_indices).reshape(-1)
        keep_rows = np.asarray(keep_rows, dtype=bool)
        b, n = model_indices.shape[0], self.x.shape[0]
        if b == 0 or keep_rows.shape != (b, n):
            raise ValueError(
                f"keep_rows has shape {keep_rows.shape}; it must be [B, N] = [{b}, {n}]: one "
                "row of the run's keep mask per model index (B >= 1)."
            )
        if label_rows is None:
            label_rows = np.broadcast_to(np.asarray(self.y), (b, n))
        label_rows = np.asarray(label_rows)
        if label_rows.shape != (b, n) or not np.issubdtype(label_rows.dtype, np.integer):
            raise ValueError(
                f"label_rows has shape {label_rows.shape} and dtype {label_rows.dtype}; it must "
                f"be [B, N] = [{b}, {n}] ints: the labels each model trains on."
            )
        c = self.config.num_classes
        if label_rows.size and (label_rows.min() < 0 or label_rows.max() >= c):
            raise ValueError(
                f"label_rows lie in [{label_rows.min()}, {label_rows.max()}]; they must be in "
                f"[0, num_classes={c})."
            )
        size = self.padded_size(b)
        params, opt_state = self.init(model_indices)
        data_keys = model_keys(self.config.seed, pad_models(model_indices, size), _DATA_STREAM)
        data_keys = self._on_mesh(data_keys)
        keep_dev = self._on_mesh(pad_models(keep_rows, size))
        labels_dev = self._on_mesh(pad_models(label_rows.astype(np.int32), size))
        examples = float(keep_rows.sum())
        epoch_fn = self.compile(size)
        first = 0
        if checkpointer is not None:
            restored = checkpointer.restore((params, opt_state))
            if restored is not None:
                first, params, opt_state = restored
        for epoch in range(first, self.config.epochs):
            start = time.perf_counter()
            epoch_index = jax.device_put(jnp.int32(epoch), NamedSharding(self.mesh, P()))
            params, opt_state, stats = epoch_fn(
                params, opt_state, data_keys, keep_dev, labels_dev, epoch_index, self.x
            )
            failpoints.hit("epoch_dispatched")  # Fault tests: a kill during the epoch.
            if progress is not None:
                jax.block_until_ready(stats)
                seconds = time.perf_counter() - start
                progress(
                    {
                        "epoch": epoch + 1,
                        "loss": np.asarray(stats["loss"])[:b],
                        "accuracy": np.asarray(stats["accuracy"])[:b],
                        "examples_per_second": examples / max(seconds, 1e-9),
                        "seconds": seconds,
                        **(
                            {"dp_truncated": np.asarray(stats["dp_truncated"])[:b]}
                            if "dp_truncated" in stats
                            else {}
                        ),
                    }
                )
            if checkpointer is not None:
                checkpointer.maybe_save(
                    epoch + 1, params, opt_state, last=epoch + 1 == self.config.epochs
                )
        return self.unpad(params, b)


def default_memory_budget(device: jax.Device | None = None) -> int:
    """Bytes a block may plan to use on `device` (the backend's `memory_fraction` of it).

    GPUs/TPUs: of `memory_stats()["bytes_limit"]`; CPU (no memory stats): of the host's
    physical memory, divided among its CPU devices.
    """
    device = device or jax.local_devices()[0]
    fraction = backend_defaults(device.platform).memory_fraction
    stats = None
    try:
        stats = device.memory_stats()
    except Exception:  # noqa: BLE001 - backends without memory stats raise various errors
        stats = None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"] * fraction)
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return int(physical * fraction / max(1, len(jax.local_devices(backend=device.platform))))


def bytes_per_model(config: TrainConfig, image_shape: Sequence[int]) -> tuple[int, int]:
    """Estimated device bytes of one model in a block: (state, training working set).

    `state` (params, gradients, momentum, update: 4 copies of the params) is held for
    every model of a block; the working set (every intermediate of one training step on
    `batch_size` examples: an upper bound, since XLA reuses buffers) only for the models
    computed at once (`model_chunk` per device). With DP-SGD the step is traced as it runs:
    per-example gradients (one parameter copy per batch slot, and their clipped copies) on
    `dpsgd.max_batch_size(batch_size)` slots. Traced with `jax.eval_shape` /
    `jax.make_jaxpr`: no compilation, no device memory.

    Returns:
      (state_bytes, work_bytes).
    """
    tabular = len(image_shape) == 1
    model = get_model(config.arch, config.num_classes, config.conv_impl, tabular=tabular)
    batch = dpsgd.max_batch_size(config.batch_size) if config.dp else config.batch_size
    x = jax.ShapeDtypeStruct((batch, *image_shape), jnp.dtype(config.compute_dtype))
    params = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros(x.shape)))
    state = 4 * tree_bytes(params)

    def loss(p, xb):
        return model.apply(p, xb).astype(jnp.float32).sum()

    def dp_grads(p, xb):
        b = xb.shape[0]
        return dpsgd.noisy_gradient(
            lambda p, xi, yi: (loss(p, xi[None]), yi.astype(jnp.float32)),
            p,
            xb,
            jnp.zeros(b, jnp.int32),
            jnp.ones(b, jnp.float32),
            jax.random.PRNGKey(0),
            clip_norm=1.0,
            noise_multiplier=1.0,
            denominator=1.0,
        )[0]

    jaxpr = jax.make_jaxpr(dp_grads if config.dp else jax.grad(loss))(params, x)
    work = 0
    for eqn in _all_eqns(jaxpr.jaxpr):
        for v in eqn.outvars:
            aval = v.aval
            # Typed PRNG keys (jax-privacy's noise) are a few bytes: not counted.
            if hasattr(aval, "shape") and not jax.dtypes.issubdtype(
                aval.dtype, jax.dtypes.extended
            ):
                work += int(np.prod(aval.shape)) * np.dtype(aval.dtype).itemsize
    return state, work


def _all_eqns(jaxpr):
    """Every equation of a jaxpr and of the jaxprs nested in it (pjit, custom_vjp, ...)."""
    for eqn in jaxpr.eqns:
        yield eqn
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            yield from _all_eqns(sub)


def auto_models_per_step(
    config: TrainConfig,
    image_shape: Sequence[int],
    num_models: int,
    *,
    devices: Sequence[jax.Device] | None = None,
    model_chunk: int | None = None,
    memory_budget: int | None = None,
) -> int:
    """The block size to use when the user does not set one.

    Rule: `min(num_models, D * models_per_device[backend], memory cap)`, rounded down to a
    multiple of the device count D (at least D, and never more than `num_models` rounded
    up to a multiple of D). The memory cap is `D * (budget - live_chunk * work) / state`,
    from `bytes_per_model`, with `live_chunk` the models computed at once per device
    (`model_chunk`, or the whole share for a full vmap, in which case the cap is
    `D * budget / (state + work)`). `models_per_device` is the measured point past which
    larger blocks gain nothing (see `BACKEND_DEFAULTS`; the benchmark's block-size sweep).

    Args:
      config: the run's `TrainConfig`.
      image_shape: [H, W, C] of one example.
      num_models: models left to train in this process's range.
      devices: the devices of the mesh (default: all local devices).
      model_chunk: as in `Engine` (None: the backend's default).
      memory_budget: bytes per device (default: `default_memory_budget`).

    Returns:
      Models per block, >= 1.
    """
    devices = list(jax.local_devices() if devices is None else devices)
    d = len(devices)
    backend = devices[0].platform
    chunk = _resolve_chunk(model_chunk, backend)
    prefer = backend_defaults(backend).models_per_device
    budget = memory_budget if memory_budget is not None else default_memory_budget(devices[0])
    state, work = _cached_bytes_per_model(config, tuple(image_shape))
    if chunk is None:
        per_device = budget // max(1, state + work)
    else:
        per_device = (budget - chunk * work) // max(1, state)
    per_device = max(1, min(prefer, int(per_device)))
    wanted = min(int(num_models), per_device * d)
    return max(d, wanted // d * d) if num_models >= d else d


@functools.lru_cache(maxsize=32)
def _cached_bytes_per_model(config: TrainConfig, image_shape: tuple[int, ...]) -> tuple[int, int]:
    return bytes_per_model(config, image_shape)

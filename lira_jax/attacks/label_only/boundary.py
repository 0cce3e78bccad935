"""The decision-boundary attack: distance to the target's boundary found by HopSkipJump.

Design notes: a member sits farther from the target's decision boundary than a non-member
(Choquette-Choo et al. 2021; Li & Zhang 2021). The distance is measured with HopSkipJump
(Chen, Jordan & Wainwright 2020; untargeted, L2), which needs only the target's predicted
label of each input it queries: the model is reached only through `argmax` of its
outputs, so the search is the same for any output with the same argmax.

The search, per (model, example), with x* the example and y its label:
  1. x* already mislabelled: distance 0 (one query).
  2. Start: the first of `init_size` uniform random inputs in the clip box that the model
     does not label y, then a bisection (10 steps, tolerance 1e-3) along the segment from
     x* to it, and a bisection to the boundary (⌈log2(1/θ)⌉ steps, θ = γ / d^{3/2}).
  3. `iterations` times: estimate the boundary's normal at the current point x from
     n_t = min(⌊init_evals·√(t+1)⌋, max_evals) labels of x + δ·u, u uniform on the sphere
     (δ = 0.1·range at t = 0, then √d·θ·‖x − x*‖), with the mean of the ±1 decisions
     subtracted as a baseline; step along it by ε = ‖x − x*‖/√(t+1), halving ε until the
     step stays adversarial (at most `step_halvings` halvings; no step if none does);
     bisect back toward x*. Every input is clipped to the box.
  4. The distance is ‖x − x*‖ after the last bisection; if no random start was found it
     is the box's diameter (an upper bound of any distance inside the box; counted in
     `init_failed`).
The label queries each example used are counted as a sequential implementation would
issue them (the batched code evaluates a few more, e.g. the rest of a batch of random
starts after the first success, and discards them).

Batching: all examples of a chunk advance together (arrays [E, ...]; a chunk's model
evaluations are single calls on E·`eval_batch` inputs), and models are mapped like the
engine's training (sharded over devices, `model_chunk` models vmapped at once), so one
compiled call runs a chunk of examples on every model. Memory is set by `example_chunk`
× `eval_batch` inputs, not by N. Every random draw is a function of (seed, global model
index, global example index), not of the chunking. The budget (iterations, evaluations)
is passed as traced scalars: one compilation serves every budget of a given model,
`example_chunk` and `eval_batch`.

Scoring (`boundary_attack`): score = distance, which uses no shadow model, so the scores
and the AUC do not depend on any shadow set. Two operating points: a threshold calibrated
on shadow models — the distance maximising TPR − FPR over the pooled (model, example)
pairs of every other model whose distances were computed — and Li & Zhang's unsupervised
one: the `percentile`-th percentile of the target's distances on random inputs (each
labelled by the target itself), which needs no shadow data. The shadow threshold pools
all the other models' pairs rather than the per-example equal-size sets of
`lira_jax.attacks.shadow_sets`: it is one number per target, not a per-example statistic,
and distances are usually computed for a few models only, whose keep rows are not
balanced (cut to the sparsest example's counts, as `shadow_sets` does for such masks, few
or no pairs would remain).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from lira_jax.attacks.bank import AttackOutput, AttackUndefined
from lira_jax.train.engine import backend_defaults, map_models
from lira_jax.train.sharding import MESH_AXIS, models_mesh, padded_size

__all__ = [
    "HSJ_LAYOUT",
    "BoundaryDistances",
    "HSJConfig",
    "boundary_attack",
    "clip_range",
    "hsj_distances",
    "random_inputs",
]

PyTree = Any
_BLEND_STEPS = 10  # bisection toward the random start: tolerance 2^-10 < 1e-3 (Chen et al.)
_INIT_STREAM, _GRAD_STREAM = 1, 2


@dataclasses.dataclass(frozen=True)
class HSJConfig:
    """HopSkipJump's budget and execution layout.

    Attributes:
      iterations: gradient-estimate / step / bisection rounds (ART default 50).
      max_evals: most label queries of one gradient estimate (ART default 10,000).
      init_evals: queries of the first gradient estimate; round t uses
        min(⌊init_evals·√(t+1)⌋, max_evals) (ART default 100).
      init_size: random inputs tried as a starting point (ART default 100).
      gamma: sets the bisection tolerance θ = gamma / d^{3/2} (Chen et al.: 1).
      step_halvings: most halvings of the step size per round.
      example_chunk: examples attacked together (memory ~ example_chunk × eval_batch
        model inputs per model evaluated at once); None: the backend's `HSJ_LAYOUT`.
      eval_batch: gradient-estimate / random-start inputs per example per model call;
        None: the backend's `HSJ_LAYOUT`.

    The default budget (10 iterations, 50 initial evaluations) uses ~1,200 label queries
    per example on 8x8 inputs, ~1/20 of ART's defaults (docs/benchmarks.md, "Boundary attack").
    """

    iterations: int = 10
    max_evals: int = 1000
    init_evals: int = 50
    init_size: int = 100
    gamma: float = 1.0
    step_halvings: int = 15
    example_chunk: int | None = None
    eval_batch: int | None = None

    def validate(self) -> None:
        for name in ("max_evals", "init_evals", "init_size", "example_chunk", "eval_batch"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"HSJConfig.{name}={getattr(self, name)} must be >= 1.")
        if self.iterations < 0 or self.step_halvings < 0:
            raise ValueError(
                f"HSJConfig.iterations={self.iterations} and step_halvings="
                f"{self.step_halvings} must be >= 0."
            )
        if not self.gamma > 0:
            raise ValueError(f"HSJConfig.gamma={self.gamma} must be > 0.")

    def queries_per_example(self, image_size: int) -> int:
        """Most label queries one example can use (its budget) for inputs of `image_size`."""
        evals = sum(
            min(int(self.init_evals * math.sqrt(t + 1)), self.max_evals)
            for t in range(self.iterations)
        )
        bisect = _bisection_steps(self.gamma, image_size)
        return (
            1
            + self.init_size
            + _BLEND_STEPS
            + bisect
            + evals
            + self.iterations * (self.step_halvings + 1 + bisect)
        )


# (example_chunk, eval_batch) per backend. CPU (2 cores, digits cnn32, docs/benchmarks.md):
# small model calls (32 x 10 inputs) ran ~1.5-3x the label queries/s of 128 x 100, whose
# activations fall out of cache. GPU/TPU: not measured here; large calls fill the device.
HSJ_LAYOUT = {"cpu": (32, 10), "gpu": (256, 100), "tpu": (256, 100)}


def _bisection_steps(gamma: float, image_size: int) -> int:
    theta = gamma / image_size**1.5
    return max(1, math.ceil(math.log2(1.0 / theta)))


@dataclasses.dataclass(frozen=True)
class BoundaryDistances:
    """HopSkipJump's results for B models on N inputs.

    Attributes:
      models: [B] int64 global model indices.
      distances: [B, N] float64 L2 distance to the decision boundary (0: mislabelled).
      queries: [B, N] int64 label queries used.
      init_failed: [B, N] bool, no random start was found (distance = the box diameter).
    """

    models: np.ndarray
    distances: np.ndarray
    queries: np.ndarray
    init_failed: np.ndarray


def clip_range(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The per-channel input range of a dataset's images [N, H, W, C]: (min [C], max [C]).

    Datasets are standardised per channel, so the pixel range [0, 1] maps to one interval
    per channel; the pool's minimum and maximum are that interval (for datasets where
    some image reaches 0 and 1 in each channel).
    """
    x = np.asarray(x)
    axes = tuple(range(x.ndim - 1))
    return x.min(axis=axes).astype(np.float32), x.max(axis=axes).astype(np.float32)


def random_inputs(
    num: int, image_shape: Sequence[int], clip_min, clip_max, seed: int
) -> np.ndarray:
    """`num` inputs uniform in the clip box (Li & Zhang's unsupervised calibration set)."""
    u = np.random.default_rng([seed, 0xB0D]).random((num, *image_shape), dtype=np.float32)
    lo, hi = np.asarray(clip_min, np.float32), np.asarray(clip_max, np.float32)
    return (lo + u * (hi - lo)).astype(np.float32)


def _norm(x):
    return jnp.sqrt(jnp.sum(x * x, axis=tuple(range(1, x.ndim))))


def _bcast(v, x):
    """A per-example [E] vector shaped to broadcast against x [E, ...]."""
    return v.reshape(v.shape + (1,) * (x.ndim - v.ndim))


def _budget(config: HSJConfig, image_size: int) -> dict:
    """The config's budget as device scalars: traced, so budgets share one compilation."""
    return {
        "iterations": np.int32(config.iterations),
        "max_evals": np.int32(config.max_evals),
        "init_evals": np.float32(config.init_evals),
        "init_size": np.int32(config.init_size),
        "step_halvings": np.int32(config.step_halvings),
        "theta": np.float32(config.gamma / image_size**1.5),
        "bisect": np.int32(_bisection_steps(config.gamma, image_size)),
    }


def _hsj_one_model(model, eval_batch, lo, hi, cfg, params, keys, x0, y, valid):
    """HopSkipJump on E examples of one model. Returns (distance, queries, init_failed) [E].

    `cfg` is `_budget(...)` (traced scalars); `eval_batch` is static (it sets shapes).
    """
    e = x0.shape[0]
    image = x0.shape[1:]
    d = int(np.prod(image))
    theta, bisect = cfg["theta"], cfg["bisect"]
    span = hi - lo
    diameter = jnp.sqrt(jnp.sum(jnp.broadcast_to(span * span, image)))
    clip = lambda z: jnp.clip(z, lo, hi)
    s = eval_batch

    def labels_of(z):  # [K, ...] -> [K] int: the only thing read from the model
        return jnp.argmax(model.apply(params, z), axis=-1)

    pred0 = labels_of(x0)
    y_eff = jnp.where(y < 0, pred0, y)  # y < 0: the model's own label (random inputs)

    def adversarial(z):  # [E, K, ...] -> [E, K] bool
        k = z.shape[1]
        return labels_of(z.reshape((e * k,) + image)).reshape(e, k) != y_eff[:, None]

    active = valid & (pred0 == y_eff)
    queries = valid.astype(jnp.int32)

    # 2. A random start: the first of init_size uniform inputs that is adversarial, tried
    # eval_batch at a time until every active example has one.
    def init_batch(carry):
        b, found, first, start = carry
        ks = jax.vmap(lambda k: jax.random.fold_in(jax.random.fold_in(k, _INIT_STREAM), b))(keys)
        u = jax.vmap(lambda k: jax.random.uniform(k, (s,) + image))(ks)
        z = lo + u * span
        index = b * s + jnp.arange(s)
        adv = adversarial(z) & (index < cfg["init_size"])[None]
        hit = adv.any(axis=1) & ~found
        j = jnp.argmax(adv, axis=1)
        start = jnp.where(_bcast(hit, start), z[jnp.arange(e), j], start)
        first = jnp.where(hit, b * s + j, first)
        return b + 1, found | hit, first, start

    def init_more(carry):
        b, found, _, _ = carry
        return (b * s < cfg["init_size"]) & (active & ~found).any()

    _, found, first, start = jax.lax.while_loop(
        init_more, init_batch, (0, jnp.zeros(e, bool), jnp.zeros(e, jnp.int32), x0)
    )
    queries += jnp.where(active, jnp.where(found, first + 1, cfg["init_size"]), 0)
    failed = active & ~found
    active = active & found

    def bisection(x, steps):
        """x on the segment x* → x, within 2^-steps of the boundary (adversarial side)."""

        def step(_, bounds):
            low, high = bounds
            mid = (low + high) / 2
            z = (1 - _bcast(mid, x0)) * x0 + _bcast(mid, x0) * x
            adv = adversarial(z[:, None])[:, 0]
            return jnp.where(adv, low, mid), jnp.where(adv, mid, high)

        _, high = jax.lax.fori_loop(0, steps, step, (jnp.zeros(e), jnp.ones(e)))
        return (1 - _bcast(high, x0)) * x0 + _bcast(high, x0) * x

    x = bisection(bisection(start, _BLEND_STEPS), bisect)
    queries += jnp.where(active, _BLEND_STEPS + bisect, 0)
    dist = _norm(x - x0)

    def iteration(t, carry):
        x, dist, queries = carry
        tf = t.astype(jnp.float32)
        delta = jnp.where(t == 0, 0.1 * jnp.max(span), jnp.sqrt(float(d)) * theta * dist)
        n_t = jnp.floor(cfg["init_evals"] * jnp.sqrt(tf + 1)).astype(jnp.int32)
        n_t = jnp.minimum(n_t, cfg["max_evals"])

        def grad_batch(b, sums):
            s_fu, s_f, s_u = sums
            fold = jax.random.fold_in
            ks = jax.vmap(lambda k: fold(fold(fold(k, _GRAD_STREAM), t), b))(keys)
            u = jax.vmap(lambda k: jax.random.normal(k, (s,) + image))(ks)
            u = u / _bcast(_norm(u.reshape((e * s,) + image)).reshape(e, s), u)
            z = clip(x[:, None] + _bcast(delta, u) * u)
            u = (z - x[:, None]) / _bcast(jnp.maximum(delta, 1e-30), u)
            f = 2.0 * adversarial(z) - 1.0
            w = (b * s + jnp.arange(s) < n_t).astype(jnp.float32)[None]  # [1, S]
            fw = f * w
            return (
                s_fu + jnp.einsum("es,es...->e...", fw, u),
                s_f + fw.sum(1),
                s_u + jnp.einsum("s,es...->e...", w[0], u),
            )

        zeros = jnp.zeros_like(x)
        s_fu, s_f, s_u = jax.lax.fori_loop(
            0, (n_t + s - 1) // s, grad_batch, (zeros, jnp.zeros(e), zeros)
        )
        n = n_t.astype(jnp.float32)
        mean_f = s_f / n
        # Baseline: subtract mean(f) unless every decision agreed (then mean(f·u) itself).
        baseline = jnp.where(jnp.abs(mean_f) < 1, mean_f, 0.0)
        v = s_fu / n - _bcast(baseline, x) * s_u / n
        v = v / _bcast(jnp.maximum(_norm(v), 1e-30), v)

        def halving(carry):
            i, eps, searching, best, used = carry
            z = clip(x + _bcast(eps, x) * v)
            ok = adversarial(z[:, None])[:, 0]
            accept = searching & ok
            best = jnp.where(_bcast(accept, x), z, best)
            used = used + searching
            return i + 1, jnp.where(ok, eps, eps / 2), searching & ~ok, best, used

        def more(carry):
            i, _, searching, _, _ = carry
            return (i <= cfg["step_halvings"]) & searching.any()

        eps = dist / jnp.sqrt(tf + 1)
        zero_e = jnp.zeros(e, jnp.int32)
        _, _, _, x_new, used = jax.lax.while_loop(more, halving, (0, eps, active, x, zero_e))
        x_new = bisection(x_new, bisect)
        x_new = jnp.where(_bcast(active, x), x_new, x)
        queries = queries + jnp.where(active, n_t + bisect, 0) + used
        return x_new, _norm(x_new - x0), queries

    x, dist, queries = jax.lax.fori_loop(0, cfg["iterations"], iteration, (x, dist, queries))
    dist = jnp.where(active, dist, jnp.where(failed, diameter, 0.0))
    return dist, queries, failed


@functools.lru_cache(maxsize=16)
def _hsj_fn(model: nn.Module, eval_batch: int, mesh, model_chunk):
    """The jitted search for one (model, eval_batch, mesh, chunk); budgets are arguments."""

    def local(params, keys, lo, hi, budget, x0, y, valid):
        one = lambda a: _hsj_one_model(model, eval_batch, lo, hi, budget, a[0], a[1], x0, y, valid)
        return map_models(one, (params, keys), model_chunk)

    models, rep = P(MESH_AXIS), P()
    return jax.jit(
        jax.shard_map(
            local,
            mesh=mesh,
            in_specs=(models, models, rep, rep, rep, rep, rep, rep),
            out_specs=(models, models, models),
            check_vma=False,
        )
    )


@jax.jit
def _example_keys(seed, models, examples):
    base = jax.random.PRNGKey(seed)
    return jax.vmap(
        lambda m: jax.vmap(lambda n: jax.random.fold_in(jax.random.fold_in(base, m), n))(examples)
    )(models)


def hsj_distances(
    model: nn.Module,
    params: PyTree,
    x: np.ndarray,
    labels: np.ndarray | None,
    *,
    clip_min,
    clip_max,
    config: HSJConfig = HSJConfig(),
    seed: int = 0,
    model_indices: np.ndarray | None = None,
    devices: Sequence[jax.Device] | None = None,
    model_chunk: int | None = None,
    log=None,
) -> BoundaryDistances:
    """HopSkipJump boundary distances of every model on every input, from labels only.

    Args:
      model: the flax module (only `argmax` of its output is used).
      params: stacked params, leading axis B (e.g. `lira_jax.train.load_params`).
      x: [N, H, W, C] inputs.
      labels: [N] int labels to move away from (untargeted), or None to use each model's
        own label of each input (random inputs, Li & Zhang's calibration).
      clip_min, clip_max: the input box (scalars or per-channel [C]; `clip_range`).
      config: the `HSJConfig` (budget, chunking).
      seed: seed of the random starts and directions.
      model_indices: [B] global model indices (keys derive from them; default 0..B-1).
      devices: devices the models axis is sharded over (default: all local devices).
      model_chunk: models vmapped together per device (as in the engine).
      log: optional progress callback.

    Returns:
      `BoundaryDistances` [B, N].

    Raises:
      ValueError: bad config, shapes, labels or clip box (naming the value).
    """
    config.validate()
    x = np.asarray(x, np.float32)
    b = jax.tree.leaves(params)[0].shape[0]
    n = x.shape[0]
    model_indices = np.arange(b) if model_indices is None else np.asarray(model_indices)
    if model_indices.shape != (b,):
        raise ValueError(f"model_indices has shape {model_indices.shape}; need [B]=({b},).")
    if labels is None:
        y = np.full(n, -1, np.int32)
    else:
        y = np.asarray(labels)
        if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer) or (n and y.min() < 0):
            raise ValueError(
                f"labels must be [N]=({n},) non-negative ints (or None), got {y.dtype} {y.shape}."
            )
        y = y.astype(np.int32)
    lo = np.broadcast_to(np.asarray(clip_min, np.float32), x.shape[-1:]).copy()
    hi = np.broadcast_to(np.asarray(clip_max, np.float32), x.shape[-1:]).copy()
    if not np.all(hi > lo):
        raise ValueError(f"clip_max={hi} must exceed clip_min={lo} in every channel.")
    mesh = models_mesh(devices)
    if model_chunk is not None and model_chunk < 0:
        raise ValueError(f"model_chunk={model_chunk} must be >= 1, or 0 for a full vmap.")
    platform = mesh.devices.flat[0].platform
    chunk = backend_defaults(platform).model_chunk if model_chunk is None else model_chunk or None
    default_chunk, default_batch = HSJ_LAYOUT.get(platform, HSJ_LAYOUT["gpu"])
    config = dataclasses.replace(
        config,
        example_chunk=config.example_chunk or default_chunk,
        eval_batch=config.eval_batch or default_batch,
    )
    run = _hsj_fn(model, int(config.eval_batch), mesh, chunk)
    budget = _budget(config, int(np.prod(x.shape[1:])))
    size = padded_size(b, mesh.devices.size)
    indices = np.concatenate([model_indices, np.repeat(model_indices[-1:], size - b)])
    if size != b:
        params = jax.tree.map(
            lambda p: jnp.concatenate([p, jnp.repeat(p[-1:], size - b, 0)]), params
        )
    sharded = NamedSharding(mesh, P(MESH_AXIS))
    params = jax.device_put(params, sharded)
    # Chunks padded to one size (one compiled shape): example_chunk, or the power of two
    # >= N when N is smaller (a small calibration set does not pay for a whole chunk).
    e = min(config.example_chunk, 1 << max(0, n - 1).bit_length())
    out = [np.zeros((b, n), np.float64), np.zeros((b, n), np.int64), np.zeros((b, n), bool)]
    for n0 in range(0, n, e):
        n1 = min(n, n0 + e)
        idx = np.arange(n0, n0 + e)
        valid = idx < n1
        idx = np.where(valid, idx, n0)  # pad the tail with copies: one compiled shape
        keys = jax.device_put(_example_keys(seed, jnp.asarray(indices), jnp.asarray(idx)), sharded)
        res = run(params, keys, lo, hi, budget, x[idx], y[idx], valid)
        for o, r in zip(out, res, strict=True):
            o[:, n0:n1] = np.asarray(r)[:b, : n1 - n0]
        if log is not None:
            log(f"boundary: examples {n1}/{n} on {b} model(s)")
    return BoundaryDistances(model_indices.astype(np.int64), *out)


def _best_threshold(values: np.ndarray, truth: np.ndarray) -> float:
    """The value τ maximising TPR − FPR of "member iff value >= τ"."""
    order = np.argsort(-values, kind="stable")
    v, t = values[order], truth[order]
    tpr = np.cumsum(t) / max(1, t.sum())
    fpr = np.cumsum(~t) / max(1, (~t).sum())
    last = np.r_[np.flatnonzero(v[1:] != v[:-1]), v.size - 1]  # whole ties at once
    return float(v[last[np.argmax((tpr - fpr)[last])]])


def boundary_attack(
    bank,
    targets: np.ndarray,
    *,
    distances: BoundaryDistances | None = None,
    random_distances: BoundaryDistances | None = None,
    threshold: str = "shadow",
    percentile: float = 50.0,
    seed: int = 0,
) -> AttackOutput:
    """Boundary-distance scores of each target, with a calibrated decision threshold.

    Shadow sets: the scores use none. The "shadow" threshold pools the (model, example)
    pairs of every other model in `distances` (one number per target; see the module
    docstring); the "random" threshold uses no shadow models.

    Args:
      bank: a `LabelBank` or `SignalBank` (only membership `keep` is read, for the
        shadows' truth).
      targets: [T] target model indices; each must be in `distances.models`.
      distances: `hsj_distances` of the targets (and of any shadow models) on the N
        examples with their true labels; None: the attack is undefined (reported so).
      random_distances: `hsj_distances` of the targets on random inputs (labels=None), for
        the unsupervised threshold.
      threshold: "shadow" or "random": which threshold is the attack's operating point
        (both are reported in extras when available).
      percentile: Li & Zhang's percentile of random-input distances (ART: 50).
      seed: unused (the thresholds involve no randomness); accepted like every attack.

    Returns:
      `AttackOutput` with scores [T, N] = distance, threshold [T, 1], extras
      {"queries_mean", "queries_max", "init_failed", "shadow_threshold_mean",
      "random_threshold_mean"}.

    Raises:
      AttackUndefined: no distances (no saved parameters), a target without distances, or
        no threshold of the requested kind can be computed.
    """
    del seed
    if threshold not in ("shadow", "random"):
        raise ValueError(f"threshold={threshold!r} must be 'shadow' or 'random'.")
    if not 0 <= percentile <= 100:
        raise ValueError(f"percentile={percentile} must be in [0, 100].")
    if distances is None:
        raise AttackUndefined(
            "needs the target models' parameters: train with --save_params, then compute "
            "boundary distances (hsj_distances)"
        )
    keep_all = np.asarray(bank.keep)
    targets = np.asarray(targets, np.int64).reshape(-1)
    row = {int(m): i for i, m in enumerate(distances.models)}
    missing = [int(t) for t in targets if int(t) not in row]
    if missing:
        raise AttackUndefined(f"no boundary distances for target model(s) {missing[:8]}")
    rows = np.array([row[int(t)] for t in targets])
    scores = distances.distances[rows]
    extras = {
        "queries_mean": float(distances.queries[rows].mean()),
        "queries_max": int(distances.queries[rows].max()),
        "init_failed": int(distances.init_failed[rows].sum()),
    }
    keep = keep_all[distances.models]  # [K, N]
    shadow = None
    if len(distances.models) >= 2:
        shadow = np.empty(len(rows))
        for i, r in enumerate(rows):
            others = np.arange(len(distances.models)) != r
            truth = keep[others].ravel()
            ok = truth.any() and not truth.all()
            shadow[i] = (
                _best_threshold(distances.distances[others].ravel(), truth) if ok else np.nan
            )
        if np.isnan(shadow).any():
            shadow = None
        else:
            extras["shadow_threshold_mean"] = float(shadow.mean())
    random = None
    if random_distances is not None:
        rrow = {int(m): i for i, m in enumerate(random_distances.models)}
        if all(int(t) in rrow for t in targets):
            rd = random_distances.distances[[rrow[int(t)] for t in targets]]
            random = np.percentile(rd, percentile, axis=1)
            extras["random_threshold_mean"] = float(random.mean())
    chosen = shadow if threshold == "shadow" else random
    if chosen is None:
        why = (
            "needs distances of at least one other model with members and non-members"
            if threshold == "shadow"
            else "needs the targets' distances on random inputs (random_distances)"
        )
        raise AttackUndefined(f"the {threshold} threshold {why}")
    return AttackOutput(scores=scores, threshold=chosen[:, None], extras=extras)

"""DP-SGD for one model: Poisson-sampled batches, per-example clipping, Gaussian noise.

One DP-SGD step of a model with IN set D (Abadi et al. 2016, with the sampling that the
standard accounting assumes):
1. Poisson sampling: every example of D joins the step's batch independently with
   probability q (`poisson_batch`), whatever the other examples or steps did.
2. Per-example gradients g_i (a `jax.vmap` of `jax.grad` over the batch, inside the
   per-model function that the engine maps over models), each clipped to L2 norm <= C over
   all parameters together: g_i · min(1, C / ||g_i||) (jax-privacy's `clip_pytree`).
3. The clipped gradients are summed, N(0, σ² C²) noise is added to every coordinate
   (jax-privacy's `gaussian_privatizer`), and the result is divided by a fixed denominator,
   the expected batch size (a public constant, so the division is post-processing).

Design notes:
- What comes from jax-privacy (pinned in pyproject.toml) and what is kept, measured on digits
  / cnn32 (docs/design.md, "DP auditing"): the clipping (`clipping.clip_pytree`, per
  example) and the noise (`noise_addition.gaussian_privatizer`) are jax-privacy's, inside
  the per-model function. Its whole-batch `clipping.clipped_grad` composes with the
  engine (vmap / lax.map over models, shard_map) but ran DP-SGD epochs 2.5x slower on CPU
  one model at a time (its per-example sum inside the vmap, against one weighted
  `tensordot` here), so the sum stays here, tested equal to `clipped_grad`'s output on the
  same inputs. Its Poisson sampling (`batch_selection.CyclicPoissonSampling`) draws
  variable-size batches on the host from a numpy generator: it cannot run inside the jitted,
  per-model-keyed epoch, so `poisson_batch` stays, tested to draw the same distribution.
  Truncation differs: jax-privacy drops a uniformly random subset of an overflowing
  sample, `poisson_batch` its highest-index examples (with probability <= 1e-7 per step).
- A batch has a fixed shape: `max_batch` slots, the sampled examples first, then padding
  slots of weight 0 (the engine pads the same way). `max_batch` is set by the nominal batch
  size B alone (`max_batch_size`): the smallest b with P[Poisson(B) > b] <= 1e-7. A model's
  sample size is Binomial(n, q) with n·q <= B, whose upper tail lies below the Poisson(B)
  one (Anderson & Samuels 1967), so a step overflows with probability below 1e-7. An
  overflow is not an error: the sample is truncated to its `max_batch` lowest-index
  examples and the number of dropped examples is counted (`truncated`, reported in the
  engine's epoch stats); truncation only ever removes examples, and at this probability it
  is invisible in the accounting's precision. The price is the padding compute: about
  B + 5.2·sqrt(B) slots instead of B (1.5x at B = 128, 2x at B = 32).
- Every random choice is a pure function of the model's key: the sampling and the noise of
  step s of epoch e use `fold_in(fold_in(key, e), s)` streams (`step_keys`).
- Empty batches still add noise and take a step: the accounting counts every step.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax_privacy import clipping, noise_addition

PyTree = Any

OVERFLOW_PROBABILITY = 1e-7


@functools.lru_cache(maxsize=64)
def max_batch_size(batch_size: int, overflow_probability: float = OVERFLOW_PROBABILITY) -> int:
    """Slots of a Poisson-sampled batch whose expected size is at most `batch_size`.

    The smallest b with P[Poisson(batch_size) > b] <= `overflow_probability` (see the module
    notes: a Binomial(n, q) sample with n·q <= batch_size overflows even more rarely).
    """
    from scipy import stats

    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1.")
    if not 0.0 < overflow_probability < 1.0:
        raise ValueError(f"overflow_probability={overflow_probability} must be in (0, 1).")
    return int(stats.poisson.isf(overflow_probability, batch_size))


def sampling_probability(steps_per_epoch: int) -> float:
    """q = 1 / steps_per_epoch: an epoch is one expected pass over a model's IN examples.

    `steps_per_epoch` is the run's (set by the largest IN count, `engine.steps_per_epoch`),
    so q is the same for every example of every model: what the accounting needs.
    """
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch={steps_per_epoch} must be >= 1.")
    return 1.0 / int(steps_per_epoch)


def step_keys(key: jax.Array, epoch, step) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(sampling, noise, augmentation) keys of one step of one model."""
    k = jax.random.fold_in(jax.random.fold_in(key, epoch), step)
    return tuple(jax.random.split(k, 3))


def poisson_batch(
    key: jax.Array, keep_row: jax.Array, q: float, max_batch: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One Poisson-sampled batch of one model, padded to `max_batch` slots.

    Args:
      key: the step's sampling key.
      keep_row: [N] bool, the model's IN examples.
      q: inclusion probability of each IN example.
      max_batch: number of slots.

    Returns:
      (idx [max_batch] int32 example indices (sampled ones first, in index order; padding
      slots point at example 0), weight [max_batch] float32 (1 sampled, 0 padding),
      truncated: int32 number of sampled examples that did not fit).
    """
    sampled = keep_row & (jax.random.uniform(key, keep_row.shape) < q)
    count = sampled.sum().astype(jnp.int32)
    (idx,) = jnp.nonzero(sampled, size=max_batch, fill_value=0)
    weight = (jnp.arange(max_batch) < count).astype(jnp.float32)
    return idx.astype(jnp.int32), weight, jnp.maximum(count - max_batch, 0)


def noisy_gradient(
    per_example_loss: Callable[..., tuple[jax.Array, jax.Array]],
    params: PyTree,
    x: jax.Array,
    y: jax.Array,
    weight: jax.Array,
    noise_key: jax.Array,
    *,
    clip_norm: float,
    noise_multiplier: float,
    denominator: float,
) -> tuple[PyTree, dict]:
    """The DP-SGD gradient of one model on one padded batch.

    Per-example gradients (a `jax.vmap` of `jax.value_and_grad`) are each clipped to L2 norm
    <= C over all parameters together by jax-privacy's `clipping.clip_pytree` (scale
    min(1, C / ||g||); a NaN/inf gradient entry counts as 0, so even a diverged example
    stays within C), summed with the slot weights (padding contributes exactly 0), noised
    by jax-privacy's `noise_addition.gaussian_privatizer` (standard deviation σ·C per
    coordinate, keyed by `noise_key`: a privatizer made for this one step, so the noise is
    a pure function of the step's key) and divided by `denominator`. Equal, to float
    rounding, to jax-privacy's `clipping.clipped_grad` sum (`tests/test_dpsgd.py`), which
    the engine does not call: see the module notes.

    Args:
      per_example_loss: `(params, x_i, y_i) -> (loss, aux)` for ONE example (no batch axis);
        vmapped here over the batch.
      params: the model's parameters.
      x: [B, ...] batch; y: [B] labels; weight: [B] 1 for sampled examples, 0 for padding.
      noise_key: the step's noise key.
      clip_norm: C > 0.
      noise_multiplier: σ >= 0; the noise's standard deviation is σ·C per coordinate.
      denominator: the fixed expected batch size the noisy sum is divided by.

    Returns:
      (gradient pytree like `params`, {"loss": weighted loss sum, "aux": weighted aux sum,
      "norms": [B] per-example norms before clipping}).
    """
    grad_fn = jax.vmap(jax.value_and_grad(per_example_loss, has_aux=True), in_axes=(None, 0, 0))
    (losses, aux), grads = grad_fn(params, x, y)
    clipped, norms = jax.vmap(lambda g: clipping.clip_pytree(g, clip_norm))(grads)
    summed = jax.tree.map(lambda g: jnp.tensordot(weight, g, axes=1), clipped)
    privatizer = noise_addition.gaussian_privatizer(
        stddev=noise_multiplier * clip_norm, prng_key=noise_key
    )
    noised, _ = privatizer.update(summed, privatizer.init(summed))
    stats = {"loss": (losses * weight).sum(), "aux": (aux * weight).sum(), "norms": norms}
    return jax.tree.map(lambda g: g / denominator, noised), stats


def check_dp_settings(noise_multiplier, clip_norm, delta) -> None:
    """Validates DP-SGD settings: all None (off), or σ >= 0, C > 0 and δ in (0, 1)."""
    given = [v is not None for v in (noise_multiplier, clip_norm, delta)]
    if not any(given):
        return
    if not all(given):
        raise ValueError(
            f"DP-SGD needs all of dp_noise_multiplier={noise_multiplier}, "
            f"dp_clip_norm={clip_norm} and dp_delta={delta} (or none of them, for plain SGD)."
        )
    if not np.isfinite(noise_multiplier) or noise_multiplier < 0:
        raise ValueError(f"dp_noise_multiplier={noise_multiplier} must be a finite number >= 0.")
    if not (np.isfinite(clip_norm) and clip_norm > 0):
        raise ValueError(f"dp_clip_norm={clip_norm} must be a finite number > 0 (an L2 norm).")
    if not 0.0 < delta < 1.0:
        raise ValueError(f"dp_delta={delta} must be in (0, 1), e.g. 1e-5 (below 1/N).")

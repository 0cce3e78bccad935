"""Equal-size IN and OUT shadow sets for the label-only attacks' leave-one-model-out.

Design notes: with a balanced keep mask (example n IN for K of M models), leaving target t
out leaves a member K − 1 IN and M − K OUT shadows but a non-member K IN and M − K − 1 OUT
shadows, so statistics fitted per example differ between members and non-members even
when the models carry no membership signal. The rule every attack of this project follows:
for each target t and example n one more model is dropped, uniformly at random, from the
group (IN or OUT) the target is not in, so both groups lose exactly one model whatever the
target's membership. `removed_models` returns, per (target, example), the model each group
loses; a statistic summed over all M models once is then corrected by subtracting those
two models' terms (O(T·N) per statistic instead of T refits). The draw for target t comes
from `default_rng([seed, _STREAM, t])`, so a target's shadow sets depend on (keep, seed, t)
only.
"""

from __future__ import annotations

import numpy as np

__all__ = ["group_sums", "removed_models"]

_STREAM = 0x1AB1  # separates these draws from other uses of the seed


def removed_models(
    keep: np.ndarray, targets: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The model that the IN group and the OUT group of each (target, example) lose.

    Args:
      keep: [M, N] bool.
      targets: [T] model indices.
      seed: the attack's seed.

    Returns:
      (from_in, from_out), each [T, N] int64 model indices: the target itself for the
      group it is in, a random model of the other group for the other; −1 where that other
      group is empty (nothing to drop).
    """
    num_models, num_examples = keep.shape
    in_order = np.argsort(~keep, axis=0, kind="stable")  # column n: its IN models first
    out_order = np.argsort(keep, axis=0, kind="stable")
    count_in = keep.sum(axis=0)
    count_out = num_models - count_in
    cols = np.arange(num_examples)
    from_in = np.empty((len(targets), num_examples), np.int64)
    from_out = np.empty_like(from_in)
    for i, t in enumerate(np.asarray(targets, np.int64)):
        u = np.random.default_rng([seed, _STREAM, int(t)]).random(num_examples)
        target_in = keep[t]
        other = np.where(target_in, count_out, count_in)
        pick = np.minimum((u * other).astype(np.int64), np.maximum(other - 1, 0))
        drop = np.where(target_in, out_order[pick, cols], in_order[pick, cols])
        drop = np.where(other > 0, drop, -1)
        from_in[i] = np.where(target_in, t, drop)
        from_out[i] = np.where(target_in, drop, t)
    return from_in, from_out


def _terms(values: np.ndarray, models: np.ndarray) -> np.ndarray:
    """values[models[t, n], n, ...] ([T, N, ...]), 0 where models is −1."""
    cols = np.arange(values.shape[1])
    picked = values[np.maximum(models, 0), cols[None, :]]
    valid = (models >= 0).reshape(models.shape + (1,) * (values.ndim - 2))
    return np.where(valid, picked, 0)


def group_sums(
    values: np.ndarray, keep: np.ndarray, removed: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sums of a per-model statistic over each (target, example)'s IN and OUT shadows.

    Args:
      values: [M, N, ...] numbers (e.g. 0/1 correctness per query).
      keep: [M, N] bool.
      removed: `removed_models(keep, targets, seed)`.

    Returns:
      (sum_in [T, N, ...], count_in [T, N], sum_out, count_out), int64 for integer or
      bool values, float64 otherwise.
    """
    dtype = np.int64 if values.dtype == bool or np.issubdtype(values.dtype, np.integer) else float
    values = values.astype(dtype, copy=False)
    expand = keep.reshape(keep.shape + (1,) * (values.ndim - 2))
    total_in = np.where(expand, values, 0).sum(axis=0)
    total_out = np.where(expand, 0, values).sum(axis=0)
    count_in = keep.sum(axis=0)
    count_out = keep.shape[0] - count_in
    from_in, from_out = removed
    sum_in = total_in[None] - _terms(values, from_in)
    sum_out = total_out[None] - _terms(values, from_out)
    return sum_in, count_in[None] - (from_in >= 0), sum_out, count_out[None] - (from_out >= 0)

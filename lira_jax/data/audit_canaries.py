"""Worst-case membership canaries for DP auditing: pool examples made easy to tell apart.

    ds, mask = plant(ds, seed, num_canaries=100, kind="mislabeled")

Every example of a store is already a membership canary (IN for a random half of the models,
by the keep mask). A DP audit's lower bound is only as good as the attack's best examples,
so the DP-auditing literature plants examples whose membership an attack sees most easily
(Jagielski et al. 2020; Nasr et al. 2021, 2023; Steinke et al. 2023). `plant` replaces K
examples of the pool, a uniformly random set fixed by the seed (`audit_canary_mask`), by
one of three kinds:

- ``mislabeled``: the image is kept, the label becomes a uniformly random other class;
- ``ood``: an out-of-distribution input: every entry drawn uniformly in the pool's
  [min, max] range of its channel (images) or feature (tabular), independently per canary,
  with a uniformly random label;
- ``blank``: a blank input, every entry at its channel's (feature's) minimum over the pool,
  with the pool's rarest label (fewest examples; ties: the smallest class). Blank canaries
  are made distinct by a mark: s entries at the channel's maximum, at positions that no
  other canary shares as a set (s = 1 while K <= P positions, else the smallest s with
  C(P, s) >= K, every canary's positions drawn at random without repeats). Identical
  blanks would be duplicates, and a model trained on any of them would have seen them all.

The planted values are a pure function of (seed, the pool, K, kind); the pool is the one
after standardisation and any label task (what the models train on and are queried on).
The store records the mask (``audit_canary``) and the planted labels (its ``labels``);
the images are rebuilt from the config.

Design notes: the draws use their own stream of the seed (`_AUDIT_STREAM`), so the keep
mask, the label-flip canaries of BLIA (`membership.canary_mask`, which may overlap these)
and every model's key are the same with or without audit canaries.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from lira_jax.data.datasets import Dataset

__all__ = ["AUDIT_CANARY_KINDS", "audit_canary_mask", "plant", "plant_for_config"]

AUDIT_CANARY_KINDS = ("mislabeled", "ood", "blank")
_AUDIT_STREAM = 4


def audit_canary_mask(seed: int, num_examples: int, num_canaries: int) -> np.ndarray:
    """[N] bool with exactly `num_canaries` True entries: a uniformly random set of the pool.

    Raises:
      ValueError: `num_canaries` outside [1, N].
    """
    if isinstance(num_canaries, bool) or not isinstance(num_canaries, int | np.integer):
        raise ValueError(f"audit_canaries={num_canaries!r} must be an int >= 1.")
    if not 1 <= num_canaries <= num_examples:
        raise ValueError(
            f"audit_canaries={num_canaries} must be in [1, {num_examples}] (the pool size); "
            "0 turns audit canaries off."
        )
    rng = np.random.default_rng([int(seed), _AUDIT_STREAM, 0])
    mask = np.zeros(num_examples, bool)
    mask[rng.choice(num_examples, size=int(num_canaries), replace=False)] = True
    return mask


def _marks(rng: np.random.Generator, positions: int, count: int) -> list[np.ndarray]:
    """`count` distinct sets of s positions out of `positions` (s as small as allows)."""
    s = 1
    while math.comb(positions, s) < count:
        s += 1
    if s == 1:
        return [np.array([p]) for p in rng.choice(positions, size=count, replace=False)]
    seen: set[tuple[int, ...]] = set()
    out = []
    while len(out) < count:
        pick = tuple(sorted(rng.choice(positions, size=s, replace=False).tolist()))
        if pick not in seen:
            seen.add(pick)
            out.append(np.array(pick))
    return out


def plant(ds: Dataset, seed: int, num_canaries: int, kind: str) -> tuple[Dataset, np.ndarray]:
    """The pool with `num_canaries` audit canaries of `kind` planted (see the module notes).

    Args:
      ds: the run's pool (standardised, after its task).
      seed: the run's seed.
      num_canaries: K in [1, N].
      kind: one of `AUDIT_CANARY_KINDS`.

    Returns:
      (the dataset with x_train / y_train replaced at the canaries, mask [N] bool).

    Raises:
      ValueError: an unknown kind or K outside [1, N], naming the value.
    """
    if kind not in AUDIT_CANARY_KINDS:
        raise ValueError(f"audit_canary_kind={kind!r}; choose one of {AUDIT_CANARY_KINDS}.")
    x, y = np.array(ds.x_train, np.float32), np.array(ds.y_train, np.int32)
    mask = audit_canary_mask(seed, x.shape[0], num_canaries)
    idx = np.flatnonzero(mask)
    rng = np.random.default_rng([int(seed), _AUDIT_STREAM, 1 + AUDIT_CANARY_KINDS.index(kind)])
    c = ds.num_classes
    axes = tuple(range(x.ndim - 1))  # per channel (images) or feature (tabular)
    lo, hi = x.min(axis=axes), x.max(axis=axes)
    if kind == "mislabeled":
        y[idx] = (y[idx] + rng.integers(1, c, size=idx.size)) % c
    elif kind == "ood":
        x[idx] = rng.uniform(lo, hi, size=(idx.size, *x.shape[1:])).astype(np.float32)
        y[idx] = rng.integers(0, c, size=idx.size)
    else:
        rare = int(np.argmin(np.bincount(ds.y_train, minlength=c)))
        shape = x.shape[1:]
        channels = shape[-1]
        blank = np.broadcast_to(lo, shape).astype(np.float32)
        for i, mark in zip(idx, _marks(rng, int(np.prod(shape)), idx.size), strict=True):
            image = blank.copy().reshape(-1)
            image[mark] = np.asarray(hi).reshape(-1)[mark % channels]
            x[i] = image.reshape(shape)
        y[idx] = rare
    return dataclasses.replace(ds, x_train=x, y_train=y), mask


def plant_for_config(ds: Dataset, config: dict) -> tuple[Dataset, np.ndarray | None]:
    """`plant` with a run config's ``audit_canaries`` / ``audit_canary_kind`` (absent or 0:
    the pool unchanged and mask None)."""
    k = config.get("audit_canaries", 0)
    if not k:
        return ds, None
    return plant(ds, config["seed"], k, config.get("audit_canary_kind", "mislabeled"))

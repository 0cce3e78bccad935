"""Logits that carry no membership signal: the null hypothesis of every membership attack.

Each example n gets a shared signal — a label margin d_n ~ N(margin, spread²) and shared
class offsets b[n, c] ~ N(0, 1) — that every model sees, and each model adds its own noise:

    logits[m, n, a, c] = d_n·[c = y_n] + b[n, c] + noise · ε[m, n, a, c],  ε ~ N(0, 1).

Nothing depends on keep[m, n], so every membership attack must score AUC 0.5 up to
sampling error. The shared per-example signal is what makes a biased leave-one-out visible:
an attack whose shadow statistics depend on the target's own membership then ranks the
members of "hard" and "easy" examples differently from the non-members. All randomness
comes from `seed` (the keep mask from `membership.keep_mask(seed, ...)`, balanced).
"""

from __future__ import annotations

import numpy as np

from lira_jax.data.membership import keep_mask

__all__ = ["null_logits"]


def null_logits(
    num_models: int,
    num_examples: int,
    *,
    num_queries: int = 2,
    num_classes: int = 10,
    margin: float = 2.0,
    spread: float = 2.0,
    noise: float = 1.0,
    pkeep: float = 0.5,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Membership-independent logits, labels and a balanced keep mask.

    Args:
      num_models: M >= 2.
      num_examples: N >= 1.
      num_queries: A >= 1.
      num_classes: C >= 2.
      margin: mean of the shared label margin d_n.
      spread: standard deviation of d_n over examples (per-example difficulty).
      noise: standard deviation of each model's own noise (> 0).
      pkeep: fraction of models each example is IN for (balanced mask).
      seed: seed of everything.

    Returns:
      (logits [M, N, A, C] float32, labels [N] int32, keep [M, N] bool).

    Raises:
      ValueError: on sizes below the minimums or a non-positive noise.
    """
    if num_queries < 1 or num_classes < 2 or num_examples < 1:
        raise ValueError(
            f"Need num_queries >= 1, num_classes >= 2, num_examples >= 1; got {num_queries=}, "
            f"{num_classes=}, {num_examples=}."
        )
    if not noise > 0 or not spread >= 0:
        raise ValueError(f"{noise=} must be > 0 and {spread=} >= 0.")
    keep = keep_mask(seed, num_models, num_examples, pkeep)
    rng = np.random.default_rng([seed, 0x4E11])
    labels = rng.integers(0, num_classes, num_examples).astype(np.int32)
    shared = rng.normal(size=(num_examples, num_classes))
    shared[np.arange(num_examples), labels] += rng.normal(margin, spread, num_examples)
    logits = np.empty((num_models, num_examples, num_queries, num_classes), np.float32)
    for m in range(num_models):
        eps = rng.normal(size=(num_examples, num_queries, num_classes))
        logits[m] = shared[:, None, :] + noise * eps
    return logits, labels, keep

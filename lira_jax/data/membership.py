"""Who trains on what: balanced keep masks, pure functions of a seed."""

from __future__ import annotations

import numpy as np


def keep_mask(seed: int, num_models: int, num_examples: int, pkeep: float = 0.5) -> np.ndarray:
    """Balanced membership mask, as in the LiRA reference.

    Draws U ~ Uniform[M, N] from `seed`; model m trains on example n iff U[m, n] is
    among the `int(pkeep * M)` smallest values of column n. Every example is therefore
    IN for exactly `int(pkeep * M)` models and OUT for the rest. Following the
    reference code literally, `keep = U.argsort(0) < int(pkeep * M)`: column n of
    `U.argsort(0)` is a uniformly random permutation of the models, so this picks a
    uniformly random set of `int(pkeep * M)` models for each example.

    Args:
      seed: integer seed; the mask is a pure function of (seed, M, N, pkeep).
      num_models: M >= 2.
      num_examples: N >= 1.
      pkeep: fraction of models each example is IN for, in (0, 1).

    Returns:
      keep: [M, N] bool.
    """
    if num_models < 2:
        raise ValueError(
            f"num_models={num_models}: membership inference needs at least 2 models "
            "(one target and one shadow); use --num_models >= 2 (LiRA wants >= 16)."
        )
    if not 0.0 < pkeep < 1.0:
        raise ValueError(
            f"pkeep={pkeep} must be in (0, 1): the fraction of models that train on "
            "each example (0.5 for LiRA, 0.7 for Feldman & Zhang memorization)."
        )
    num_in = int(pkeep * num_models)
    if num_in < 1 or num_in >= num_models:
        raise ValueError(
            f"pkeep={pkeep} with num_models={num_models} gives {num_in} IN models per "
            "example; need at least one IN and one OUT. Raise num_models or change pkeep."
        )
    u = np.random.default_rng(seed).uniform(size=(num_models, num_examples))
    return u.argsort(0) < num_in

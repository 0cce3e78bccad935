"""Reference-model attack "Attack R" (Ye, Maddi, Murakonda, Bindschaedler & Shokri, 2022).

Design notes: for each example z, the target's loss is located in the distribution of the
losses of the reference models that did not train on z (the OUT shadow models), through
the empirical CDF with ties counted half (mid-rank):
  cdf(z) = (#{ℓ_ref(z) < ℓ_target(z)} + ½ #{ℓ_ref(z) = ℓ_target(z)}) / #refs.
A low percentile means "lower loss than models that never saw z": member. The score is
1 − cdf(z) ∈ [0, 1]. With k reference models it takes at most 2k + 1 values per example,
so the pooled ROC has large ties at its low-FPR end (e.g. every example whose target loss
is below all references); that is the attack as published, not smoothed here. Losses are
averaged over queries. All targets at once: the OUT losses of each example are sorted once
over every model, a vectorised binary search locates each target's loss, and the target's
own value (when it is OUT) is taken out of the counts.
"""

from __future__ import annotations

import numpy as np

from lira_jax.attacks import _loo
from lira_jax.attacks.bank import AttackOutput, AttackUndefined, SignalBank

__all__ = ["reference_attack"]


def reference_attack(bank: SignalBank, targets: np.ndarray) -> AttackOutput:
    """Percentile scores 1 − cdf of each target's loss among OUT reference models.

    Args:
      bank: a `SignalBank` (uses loss [M, N] and keep).
      targets: [T] target model indices.

    Returns:
      `AttackOutput` with scores [T, N] in [0, 1].

    Raises:
      AttackUndefined: if, for some target, an example has no OUT reference model.
    """
    bank.require(["loss"], "reference")
    targets = bank.check_targets(targets)
    _, sorted_out = bank.cached(
        ("sorted_groups", "loss"), lambda: _loo.sort_groups(bank.loss, bank.keep)
    )
    queries = bank.loss[targets].T  # [N, T]
    own_out = ~bank.keep[targets].T
    count = sorted_out.count[:, None] - own_out
    if np.any(count == 0):
        n, t = np.argwhere(count == 0)[0]
        missing = int((count[:, t] == 0).sum())
        raise AttackUndefined(
            f"reference: {missing} of {bank.num_examples} examples have no OUT reference model "
            f"when model {int(targets[t])} is the target; train more shadow models."
        )
    below = _loo.count_below(sorted_out, queries)
    at_or_below = _loo.count_below(sorted_out, queries, inclusive=True) - own_out
    cdf = (below + 0.5 * (at_or_below - below)) / count
    return AttackOutput(scores=(1.0 - cdf).T)

"""Per-example calibrated loss attack (Sablayrolles, Douze, Schmid, Ollivier & Jégou, 2019).

Design notes: the Bayes-optimal black-box attack is σ(τ_z − ℓ(θ, z)) with a per-example
threshold τ_z; the practical version scores −(ℓ_target(z) − τ_z) with τ_z estimated from
shadow models, here the midpoint of the mean loss of the shadow models that trained on z
(IN) and of those that did not (OUT), ℓ being the cross-entropy averaged over queries.
"member iff ℓ ≤ τ_z" (score >= 0) is the attack's own operating point.

Shadow sets: for target t, the IN and OUT means of every example use the same numbers
of shadows whatever t's membership of it (`lira_jax.attacks.shadow_sets`; for a balanced
mask, count_in − 1 and count_out − 1: t leaves its own group, one model chosen from
`seed` leaves the other); with plain leave-one-out a member's τ_z would average one IN
loss fewer than a non-member's. For all targets at once: per-example IN/OUT sums over
every model, minus the one value each group loses. An example without an IN or an OUT
shadow model makes the attack undefined.
"""

from __future__ import annotations

import numpy as np

from lira_jax.attacks import shadow_sets
from lira_jax.attacks.bank import AttackOutput, AttackUndefined, SignalBank

__all__ = ["sablayrolles_attack"]


def sablayrolles_attack(bank: SignalBank, targets: np.ndarray, *, seed: int = 0) -> AttackOutput:
    """Calibrated-loss scores τ_z − ℓ_target(z) of each target.

    Args:
      bank: a `SignalBank` (uses loss [M, N] and keep).
      targets: [T] target model indices.
      seed: chooses the shadow each (target, example) drops (`shadow_sets`).

    Returns:
      `AttackOutput` with scores [T, N] and threshold 0 (member iff ℓ <= τ_z).

    Raises:
      AttackUndefined: if, for some target, an example has no IN or no OUT shadow model.
    """
    bank.require(["loss"], "sablayrolles")
    targets = bank.check_targets(targets)
    loss = bank.loss
    sum_in, count_in, sum_out, count_out = shadow_sets.shadow_group_sums(loss, bank, targets, seed)
    means = []
    for which, total, count in (("IN", sum_in, count_in), ("OUT", sum_out, count_out)):
        if np.any(count <= 0):
            t, _ = np.argwhere(count <= 0)[0]
            missing = int((count[t] <= 0).sum())
            raise AttackUndefined(
                f"sablayrolles: {missing} of {bank.num_examples} examples have no {which} shadow "
                f"model when model {int(targets[t])} is the target, so their threshold τ_z is "
                "undefined; train more shadow models."
            )
        means.append(total / count)
    tau = 0.5 * (means[0] + means[1])
    return AttackOutput(scores=tau - loss[targets], threshold=0.0)

"""Loss-threshold attack (Yeom, Giacomelli, Fredrikson & Jha, 2018).

Design notes: the score is −ℓ_target(z), ℓ the cross-entropy averaged over the queries,
so the ROC comes from sweeping the threshold. Yeom et al. also fix one threshold, the
mean training loss τ; we estimate it, for each target, as the mean loss of the shadow
models (every model except the target) on their own training examples (pooled over
models and examples), and return the rule "member iff ℓ ≤ τ" as the attack's operating
point (`AttackOutput.threshold` = −τ), which the evaluation reports next to the ROC
metrics. Computing τ for all targets costs one pass: the pooled sum minus each target's
own row. The ROC uses no shadow model at all, so there is no per-example IN/OUT count
to equalise; τ pools the training losses of all shadows over all examples (a target's
membership of one example changes the pool by one value in ~N·M/2, the same for members
and non-members).
"""

from __future__ import annotations

import numpy as np

from lira_jax.attacks.bank import AttackOutput, AttackUndefined, SignalBank

__all__ = ["yeom_attack"]


def yeom_attack(bank: SignalBank, targets: np.ndarray, *, seed: int = 0) -> AttackOutput:
    """Loss-threshold scores of each target.

    Args:
      bank: a `SignalBank` (uses loss [M, N] and keep).
      targets: [T] target model indices.
      seed: unused (the scores use no per-example shadow statistic).

    Returns:
      `AttackOutput` with scores −loss [T, N], threshold −τ [T, 1] (τ = the shadow models'
      mean training loss), and extras {"mean_train_loss": mean of τ over targets}.

    Raises:
      AttackUndefined: if no shadow model trained on any example (τ undefined).
    """
    del seed
    bank.require(["loss"], "yeom")
    targets = bank.check_targets(targets)
    loss, keep = bank.loss, bank.keep
    total = float(np.sum(loss, where=keep))
    count = int(keep.sum())
    own_total = np.sum(loss[targets], axis=1, where=keep[targets])
    own_count = keep[targets].sum(axis=1)
    shadow_count = count - own_count
    if np.any(shadow_count == 0):
        t = int(targets[np.argmax(shadow_count == 0)])
        raise AttackUndefined(
            f"yeom: no shadow model trains on any example when model {t} is the target, so "
            "the mean training loss is undefined; train more shadow models."
        )
    tau = (total - own_total) / shadow_count
    return AttackOutput(
        scores=-loss[targets],
        threshold=-tau[:, None],
        extras={"mean_train_loss": float(tau.mean())},
    )

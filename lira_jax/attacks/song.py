"""Modified-entropy attack with class-dependent thresholds (Song & Mittal, 2021).

Design notes: the signal is the modified entropy Mentr(p, y) (`lira_jax.signals`),
averaged over queries; members have lower values. For each class c a threshold t_c on
−Mentr is chosen on the shadow models' values for the examples of class c (IN = the
shadow trained on the example, OUT = it did not), maximising ½(frac(IN ≥ t) + frac(OUT <
t)) over the observed values (the highest such t on ties). The target is scored
−Mentr − t_c (member iff >= 0, the attack's operating point); sweeping that score gives
the ROC.

Shadow sets: for target t, example z contributes to its class's pool the values of the
same numbers of IN and OUT shadows whatever t's membership of z
(`lira_jax.attacks.shadow_sets`; for a balanced mask count_in − 1 and count_out − 1: t's
own entry and one entry of the other group, chosen from `seed`, are left out). With plain
leave-one-out a member z would bring one IN value fewer and one OUT value more to the
pool, values that share z's difficulty with the target's own, so t_c would depend on the
target's membership.

Leave-one-model-out for all targets: the shadow values of each class are pooled over
models and sorted once; for target t the entries outside its shadow sets (its own, and the
dropped ones) are masked out of the cumulative IN/OUT counts (O(pool) per target and
class, plus O(M·N) per target to build its shadow mask). Pools larger than `max_pool`
(100,000 per class by default) are subsampled once, with `seed`, before sorting — the rank
of a threshold chosen on 10^5 values is off by a few tenths of a percent at most (binomial
error ~ 0.5/√10^5); smaller pools are used whole.
"""

from __future__ import annotations

import numpy as np

from lira_jax.attacks import shadow_sets
from lira_jax.attacks.bank import AttackOutput, AttackUndefined, SignalBank

__all__ = ["song_attack"]


def _class_pool(bank: SignalBank, c: int, max_pool: int, seed: int):
    """Sorted (descending) pooled shadow values of class c: (values, is_in, model, example)."""
    cols = np.flatnonzero(bank.labels == c)
    values = -bank.mentr[:, cols].ravel()
    is_in = bank.keep[:, cols].ravel()
    model = np.repeat(np.arange(bank.num_models), cols.size)
    example = np.tile(cols, bank.num_models)
    if values.size > max_pool:
        pick = np.random.default_rng([seed, c]).choice(values.size, max_pool, replace=False)
        values, is_in, model, example = values[pick], is_in[pick], model[pick], example[pick]
    order = np.argsort(-values, kind="stable")
    return values[order], is_in[order], model[order], example[order]


def _best_threshold(values, is_in, weight) -> tuple[float, int, int]:
    """Threshold t (member iff value >= t) maximising ½(TPR + TNR) over weighted entries.

    Returns:
      (t, num_in, num_out) with the counts of entries that had weight.
    """
    tp = np.cumsum(is_in & weight)
    fp = np.cumsum(~is_in & weight)
    num_in, num_out = int(tp[-1]), int(fp[-1])
    if num_in == 0 or num_out == 0:
        return np.nan, num_in, num_out
    ends = np.r_[np.flatnonzero(values[1:] != values[:-1]), values.size - 1]
    objective = tp[ends] / num_in + (num_out - fp[ends]) / num_out
    return float(values[ends[np.argmax(objective)]]), num_in, num_out


def song_attack(
    bank: SignalBank, targets: np.ndarray, *, max_pool: int = 100_000, seed: int = 0
) -> AttackOutput:
    """Class-threshold modified-entropy scores of each target.

    Args:
      bank: a `SignalBank` with mentr [M, N] and labels.
      targets: [T] target model indices.
      max_pool: cap on the pooled shadow values per class used to choose t_c.
      seed: seed of that subsampling and of the shadow each (target, example) drops.

    Returns:
      `AttackOutput` with scores −Mentr − t_c [T, N], threshold 0, and extras
      {"class_thresholds": {class: mean t_c over targets}}.

    Raises:
      AttackUndefined: if, for some target, a class has no IN or no OUT shadow value.
    """
    bank.require(["mentr", "labels"], "song")
    targets = bank.check_targets(targets)
    if max_pool < 2:
        raise ValueError(f"{max_pool=} must be >= 2.")
    classes = np.unique(bank.labels)
    pools = [
        bank.cached(
            ("song_pool", int(c), max_pool, seed), lambda c=c: _class_pool(bank, c, max_pool, seed)
        )
        for c in classes
    ]
    thresholds = np.empty((targets.size, classes.size))
    for i, use in enumerate(shadow_sets.target_shadow_masks(bank, targets, seed)):
        for j, (c, (values, is_in, model, example)) in enumerate(zip(classes, pools, strict=True)):
            weight = use[model, example]
            thresholds[i, j], num_in, num_out = _best_threshold(values, is_in, weight)
            if np.isnan(thresholds[i, j]):
                raise AttackUndefined(
                    f"song: class {int(c)} has {num_in} IN and {num_out} OUT shadow values when "
                    f"model {int(targets[i])} is the target; both must be > 0 to choose its "
                    "threshold. Train more shadow models."
                )
    class_index = np.searchsorted(classes, bank.labels)
    scores = -bank.mentr[targets] - thresholds[:, class_index]
    extras = {
        "class_thresholds": {
            str(int(c)): float(thresholds[:, j].mean()) for j, c in enumerate(classes)
        }
    }
    return AttackOutput(scores=scores, threshold=0.0, extras=extras)

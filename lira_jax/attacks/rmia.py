"""Robust membership inference attack, RMIA (Zarifzadeh, Liu & Shokri, 2024).

Design notes: with signal Pr(x|θ) = p_y(x) (the softmax probability of the label, averaged
over queries), the likelihood ratio of x against a population point z is
  LR(x, z) = [Pr(x|θ)/Pr(x)] / [Pr(z|θ)/Pr(z)],
where Pr(x) is the mean of Pr(x|θ') over the reference (shadow) models θ'. Online, the
references are all shadow models; offline, only those that did not train on x, and the
paper's linear correction Pr(x) ≈ ½[(1 + a)·Pr_OUT(x) + (1 − a)] stands in for the missing
IN half. The score of x is the fraction of population points z with LR(x, z) > γ.

Population: for target t, the examples t did not train on ("out", the default) — the
paper's population data are non-members of the target — or every example ("all"); x itself
is never its own population point. Because the population is shared by all x, the score
is the empirical CDF of the population's ratios evaluated at ratio(x)/γ: one sort of the
population per target and a binary search for every x, O(N log N) per target, so no
subsampling of z is needed. Ratios are compared as logarithms, log Pr(x|θ) − log Pr(x),
which keeps tiny probabilities apart; Pr(x) is floored at 1e-300.
"""

from __future__ import annotations

import numpy as np

from lira_jax.attacks.bank import AttackOutput, AttackUndefined, SignalBank

__all__ = ["rmia_attack"]

_POPULATIONS = ("out", "all")


def rmia_attack(
    bank: SignalBank,
    targets: np.ndarray,
    *,
    online: bool = True,
    gamma: float = 2.0,
    a: float = 0.3,
    population: str = "out",
) -> AttackOutput:
    """RMIA scores of each target.

    Args:
      bank: a `SignalBank` (uses p_y [M, N] and keep).
      targets: [T] target model indices.
      online: Pr(x) from all shadow models; else from the OUT ones with parameter `a`.
      gamma: likelihood-ratio threshold γ > 0 (paper default 2).
      a: offline correction parameter in [0, 1] (paper default 0.3); unused online.
      population: "out" (the target's non-members) or "all" (every example).

    Returns:
      `AttackOutput` with scores [T, N] in [0, 1].

    Raises:
      ValueError: on a bad gamma, a or population.
      AttackUndefined: offline, if an example has no OUT shadow model; or if a target's
        population is empty.
    """
    if not gamma > 0:
        raise ValueError(f"{gamma=} must be > 0 (the paper uses 2).")
    if not 0.0 <= a <= 1.0:
        raise ValueError(f"{a=} must lie in [0, 1] (the paper uses 0.3).")
    if population not in _POPULATIONS:
        raise ValueError(f"{population=} must be one of {_POPULATIONS}.")
    bank.require(["p_y"], "rmia")
    targets = bank.check_targets(targets)
    p, keep = bank.p_y, bank.keep
    own = p[targets]  # [T, N]
    if online:
        reference = (p.sum(axis=0) - own) / (bank.num_models - 1)
    else:
        own_out = ~keep[targets]
        count = (~keep).sum(axis=0) - own_out
        if np.any(count == 0):
            t, _ = np.argwhere(count == 0)[0]
            raise AttackUndefined(
                f"rmia offline: {int((count[t] == 0).sum())} of {bank.num_examples} examples "
                f"have no OUT shadow model when model {int(targets[t])} is the target; train "
                "more shadow models."
            )
        p_out = (np.sum(p, axis=0, where=~keep) - np.where(own_out, own, 0.0)) / count
        reference = 0.5 * ((1.0 + a) * p_out + (1.0 - a))
    with np.errstate(divide="ignore"):
        log_ratio = np.log(own) - np.log(np.maximum(reference, 1e-300))
    log_gamma = float(np.log(gamma))

    scores = np.empty(own.shape)
    for i, t in enumerate(targets):
        in_population = ~keep[t] if population == "out" else np.ones(bank.num_examples, bool)
        pop = np.sort(log_ratio[i, in_population])
        size = pop.size - in_population.astype(np.int64)  # x is not its own z
        if np.any(size == 0):
            raise AttackUndefined(
                f"rmia: the population of target model {int(t)} is empty "
                f"({population=}); use population='all' or more examples."
            )
        wins = np.searchsorted(pop, log_ratio[i] - log_gamma, side="left")
        # LR(x, x) = 1 > γ only when γ < 1: then x would have counted itself.
        if log_gamma < 0:
            wins = wins - in_population
        scores[i] = wins / size
    return AttackOutput(scores=scores)

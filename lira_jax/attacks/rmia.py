"""Robust membership inference attack, RMIA (Zarifzadeh, Liu & Shokri, 2024).

Design notes: with signal Pr(x|θ) = p_y(x) (the softmax probability of the label, averaged
over queries), the likelihood ratio of x against a population point z is
  LR(x, z) = [Pr(x|θ)/Pr(x)] / [Pr(z|θ)/Pr(z)],
where Pr(x) is the mean of Pr(x|θ') over the reference (shadow) models θ'. Online, the
references are all shadow models; offline, only those that did not train on x, and the
paper's linear correction Pr(x) ≈ ½[(1 + a)·Pr_OUT(x) + (1 − a)] stands in for the missing
IN half. The score of x is the fraction of population points z with LR(x, z) > γ.

Reference sets: for target t, every example x has the same numbers of IN and OUT
references whatever t's membership of x (`lira_jax.attacks.shadow_sets`; for a balanced
mask count_in − 1 and count_out − 1: t leaves its own group, one model chosen from `seed`
leaves the other); offline uses the OUT part. With plain leave-one-out the online Pr(x) of
a member would average one IN model fewer and one OUT model more than a non-member's.
Pr(z) of a population point is computed the same way, with t's membership of z.

Constants: γ and a are options. The defaults are the paper's (γ = 2, a = 0.3);
ml_privacy_meter, the authors' code, compares the ratios against γ = 1 and chooses the
offline a by attacking a paired reference model (a = "auto" here): for target t the
paired model p = t xor 1 (t − 1 for the last model of an odd M; for the i-th external target
of a bank, `lira_jax.attacks.bank`, store model i mod M) is attacked offline, with
references that exclude both t and p (`shadow_sets.equalized_shadow_mask`), for every a in
{0, 0.1, …, 1}; the a with the highest AUC on p's known membership (the smallest such a
on ties) is used for t. t's own outputs never enter that choice.

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

from lira_jax import metrics
from lira_jax.attacks import shadow_sets
from lira_jax.attacks.bank import AttackOutput, AttackUndefined, SignalBank

__all__ = ["A_GRID", "rmia_attack"]

_POPULATIONS = ("out", "all")
A_GRID: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(11))
"""The offline a values tried by a = "auto" (those of ml_privacy_meter)."""


def _offline_reference(p_out: np.ndarray, a: float | np.ndarray) -> np.ndarray:
    """Pr(x) ≈ ½[(1 + a)·Pr_OUT(x) + (1 − a)]."""
    return 0.5 * ((1.0 + a) * p_out + (1.0 - a))


def _log_ratio(own: np.ndarray, reference: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(own) - np.log(np.maximum(reference, 1e-300))


def _scores_of(
    log_ratio: np.ndarray, in_population: np.ndarray, log_gamma: float, model: int, population
) -> np.ndarray:
    """Fraction of population points z with ratio(x) − ratio(z) > log γ, for every x.

    Args:
      log_ratio: [..., N] log Pr(x|θ) − log Pr(x) of one model (leading axes: variants).
      in_population: [N] bool, which examples are population points.
      log_gamma: log γ.
      model: model index, for the message.
      population: the population option, for the message.

    Returns:
      [..., N] scores in [0, 1].
    """
    size = in_population.sum() - in_population.astype(np.int64)  # x is not its own z
    if np.any(size == 0):
        raise AttackUndefined(
            f"rmia: the population of target model {model} is empty ({population=}); use "
            "population='all' or more examples."
        )
    flat = log_ratio.reshape(-1, log_ratio.shape[-1])
    scores = np.empty(flat.shape)
    for i, row in enumerate(flat):
        pop = np.sort(row[in_population])
        wins = np.searchsorted(pop, row - log_gamma, side="left")
        # LR(x, x) = 1 > γ only when γ < 1: then x would have counted itself.
        if log_gamma < 0:
            wins = wins - in_population
        scores[i] = wins / size
    return scores.reshape(log_ratio.shape)


def _out_mean(p: np.ndarray, keep: np.ndarray, use: np.ndarray, model: int) -> np.ndarray:
    """[N] mean of p over the OUT models in `use` ([M, N] bool); raises if there are none."""
    mask = use & ~keep
    count = mask.sum(axis=0)
    if np.any(count == 0):
        raise AttackUndefined(
            f"rmia offline: {int((count == 0).sum())} of {keep.shape[1]} examples have no OUT "
            f"reference model when model {model} is attacked; train more shadow models."
        )
    return np.sum(p, axis=0, where=mask) / count


def _tune_a(bank: SignalBank, target: int, seed: int, log_gamma: float, population: str):
    """The offline a (from `A_GRID`) that best attacks the model paired with `target`."""
    num_models = bank.num_store_models
    if target >= num_models:  # an external target pairs with a store model (never itself)
        paired = (target - num_models) % num_models
    else:
        paired = target ^ 1 if (target ^ 1) < num_models else target - 1
    p, keep = bank.p_y, bank.keep
    use = shadow_sets.fold_shadow_mask(bank, [target, paired], seed)
    p_out = _out_mean(p, keep, use, paired)
    grid = np.asarray(A_GRID)[:, None]
    log_ratio = _log_ratio(p[paired][None], _offline_reference(p_out[None], grid))
    pop = ~keep[paired] if population == "out" else np.ones(bank.num_examples, bool)
    scores = _scores_of(log_ratio, pop, log_gamma, paired, population)
    truth = keep[paired]
    if truth.all() or not truth.any():
        raise AttackUndefined(
            f"rmia a='auto': the paired model {paired} of target {target} has "
            f"{int(truth.sum())} members among {truth.size} examples; tuning a needs both."
        )
    aucs = [metrics.auc(*metrics.roc_curve(s, truth)) for s in scores]
    return A_GRID[int(np.argmax(aucs))]


def rmia_attack(
    bank: SignalBank,
    targets: np.ndarray,
    *,
    online: bool = True,
    gamma: float = 2.0,
    a: float | str = 0.3,
    population: str = "out",
    seed: int = 0,
) -> AttackOutput:
    """RMIA scores of each target.

    Args:
      bank: a `SignalBank` (uses p_y [M, N] and keep).
      targets: [T] target model indices.
      online: Pr(x) from all shadow models; else from the OUT ones with parameter `a`.
      gamma: likelihood-ratio threshold γ > 0 (paper default 2; the authors' code uses 1).
      a: offline correction parameter in [0, 1] (paper default 0.3), or "auto" to choose
        it per target on the paired reference model (module docstring); unused online.
      population: "out" (the target's non-members) or "all" (every example).
      seed: chooses the reference each (target, example) drops (`shadow_sets`).

    Returns:
      `AttackOutput` with scores [T, N] in [0, 1] and extras {"gamma"[, "a"]} ("a": the
      value used; with "auto", the mean over targets and "a_chosen": {a: targets}).

    Raises:
      ValueError: on a bad gamma, a or population.
      AttackUndefined: if an example has no reference model (offline: no OUT one), or a
        target's population is empty.
    """
    if not gamma > 0:
        raise ValueError(f"{gamma=} must be > 0 (the paper uses 2, the authors' code 1).")
    auto = isinstance(a, str)
    if auto and a != "auto":
        raise ValueError(f"{a=} must be a number in [0, 1] or 'auto'.")
    if not auto and not 0.0 <= a <= 1.0:
        raise ValueError(f"{a=} must lie in [0, 1] (the paper uses 0.3), or be 'auto'.")
    if population not in _POPULATIONS:
        raise ValueError(f"{population=} must be one of {_POPULATIONS}.")
    bank.require(["p_y"], "rmia")
    targets = bank.check_targets(targets)
    p, keep = bank.p_y, bank.keep
    sum_in, count_in, sum_out, count_out = shadow_sets.shadow_group_sums(p, bank, targets, seed)
    count = count_in + count_out if online else count_out
    if np.any(count <= 0):
        t, _ = np.argwhere(count <= 0)[0]
        raise AttackUndefined(
            f"rmia {'online' if online else 'offline'}: {int((count[t] <= 0).sum())} of "
            f"{bank.num_examples} examples have no {'' if online else 'OUT '}reference model "
            f"when model {int(targets[t])} is the target; train more shadow models."
        )
    if online:
        reference = (sum_in + sum_out) / count
    else:
        p_out = sum_out / count
    log_gamma = float(np.log(gamma))

    scores = np.empty((targets.size, bank.num_examples))
    chosen = []
    for i, t in enumerate(targets):
        if not online:
            a_t = _tune_a(bank, int(t), seed, log_gamma, population) if auto else a
            chosen.append(a_t)
            reference_t = _offline_reference(p_out[i], a_t)
        else:
            reference_t = reference[i]
        pop = ~keep[t] if population == "out" else np.ones(bank.num_examples, bool)
        scores[i] = _scores_of(_log_ratio(p[t], reference_t), pop, log_gamma, int(t), population)
    extras = {"gamma": float(gamma)}
    if not online:
        extras["a"] = float(np.mean(chosen))
        if auto:
            values, counts = np.unique(chosen, return_counts=True)
            extras["a_chosen"] = {f"{v:.1f}": int(c) for v, c in zip(values, counts, strict=True)}
    return AttackOutput(scores=scores, extras=extras)

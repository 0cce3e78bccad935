"""Reference-model attack "Attack R" (Ye, Maddi, Murakonda, Bindschaedler & Shokri, 2022).

Design notes: for each example z, the target's loss is located in the distribution of the
losses of the reference models that did not train on z (the OUT shadow models): a low
percentile means "lower loss than models that never saw z": member. Losses are averaged
over queries.

The percentile is the empirical CDF of the k reference losses s_(1) ≤ … ≤ s_(k), made
continuous where its definition allows, so that the most confident examples do not all
tie at the top (with a step CDF every target loss below all k references scores the same,
and on the digits run one threshold then admitted members and non-members together:
TPR 0 at 1% FPR):
  * a loss equal to reference values: the mid-rank (#below + ½ #equal) / k (unchanged);
  * between two consecutive distinct references L < x < U with i references ≤ L: linear
    interpolation between L's and U's plotting positions, F = (i − ½ + (x − L)/(U − L)) / k
    (the ECDF's value i/k is the midpoint of that segment);
  * beyond the smallest (largest) reference: an exponential tail,
    F = ½/k · exp((x − s_(1))/h), resp. 1 − F = ½/k · exp(−(x − s_(k))/h), with h the mean
    spacing (s_(k) − s_(1))/(k − 1) of the example's references (for k = 1 or equal
    references, the median h over the target's other examples; 1 if none).
The score is log((1 − F)/F), which orders examples like 1 − F but keeps the tails apart
(1 − F would round to 1 below ~1e-16). Where the step CDF differs between two losses of
one example, F keeps their order; it only breaks ties.

Reference sets: for target t, every example has the same number of OUT references
whatever t's membership of it (`lira_jax.attacks.shadow_sets`; for a balanced mask the
count_out − 1 OUT models left once t (if OUT) or one OUT model chosen from `seed` (if t
is IN) is removed). All targets at once: the OUT losses of each example are sorted once over every
model, a vectorised binary search locates each target's loss, and the one removed value is
skipped when reading order statistics.
"""

from __future__ import annotations

import numpy as np

from lira_jax.attacks import _loo, shadow_sets
from lira_jax.attacks.bank import AttackOutput, AttackUndefined, SignalBank

__all__ = ["continuous_percentile_log_odds", "reference_attack"]


def continuous_percentile_log_odds(
    x: np.ndarray,
    below: np.ndarray,
    equal: np.ndarray,
    count: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    smallest: np.ndarray,
    largest: np.ndarray,
    spacing: np.ndarray,
) -> np.ndarray:
    """log((1 − F)/F) of the continuous empirical CDF F (module docstring), elementwise.

    Args:
      x: the located values.
      below, equal: numbers of references < x and == x.
      count: k, the number of references (>= 1).
      lower, upper: the largest reference < x and the smallest > x (used only where x lies
        strictly between two references).
      smallest, largest: s_(1) and s_(k).
      spacing: h > 0, the tail scale.

    Returns:
      float64 log-odds, decreasing in F (higher = more member-like).
    """
    k = count.astype(np.float64)
    half = np.log(0.5 / k)
    lower_tail = (equal == 0) & (below == 0)
    upper_tail = (equal == 0) & (below == count)
    inside = ~lower_tail & ~upper_tail
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        between = (below - 0.5 + (x - lower) / (upper - lower)) / k
        f = np.where(equal > 0, (below + 0.5 * equal) / k, between)
        log_f_low = half + (x - smallest) / spacing
        log_1mf_up = half - (x - largest) / spacing
        return np.where(
            inside,
            np.log1p(-f) - np.log(f),
            np.where(
                lower_tail,
                np.log1p(-np.exp(log_f_low)) - log_f_low,
                log_1mf_up - np.log1p(-np.exp(log_1mf_up)),
            ),
        )


def reference_attack(bank: SignalBank, targets: np.ndarray, *, seed: int = 0) -> AttackOutput:
    """Continuous-percentile scores of each target's loss among OUT reference models.

    Args:
      bank: a `SignalBank` (uses loss [M, N] and keep).
      targets: [T] target model indices.
      seed: chooses the reference each (target, member example) drops (`shadow_sets`).

    Returns:
      `AttackOutput` with scores [T, N] = log((1 − F)/F), F the continuous percentile.

    Raises:
      AttackUndefined: if, for some target, an example has no OUT reference model.
    """
    bank.require(["loss"], "reference")
    targets = bank.check_targets(targets)
    x = bank.loss[targets].T  # [N, T]
    drop = shadow_sets.cached_drop(bank, targets, seed)
    if drop is not None:
        _, sorted_out = bank.cached(
            ("sorted_groups", "loss"), lambda: _loo.sort_groups(bank.loss, bank.keep)
        )
        _, _, v_out, r_out = shadow_sets.group_removals(bank.loss, bank.keep, targets, drop)
        return AttackOutput(scores=_located(sorted_out, x, v_out.T, r_out.T, targets, bank).T)
    scores = np.empty((targets.size, bank.num_examples))
    for i, use in enumerate(shadow_sets.target_shadow_masks(bank, targets, seed)):
        _, sorted_out = _loo.sort_groups(bank.loss, bank.keep & use, ~bank.keep & use)
        column, nothing_removed = x[:, i : i + 1], np.zeros((bank.num_examples, 1), bool)
        located = _located(sorted_out, column, column, nothing_removed, targets[i:], bank)
        scores[i] = located[:, 0]
    return AttackOutput(scores=scores)


def _located(
    sorted_out: _loo.SortedGroup,
    x: np.ndarray,
    removed: np.ndarray,
    gone: np.ndarray,
    targets: np.ndarray,
    bank: SignalBank,
) -> np.ndarray:
    """Scores [N, Q] of losses x [N, Q] among each column's OUT references, less `removed`
    ([N, Q]) where `gone`; raises AttackUndefined when a column has no reference left."""
    count = sorted_out.count[:, None] - gone
    if np.any(count <= 0):
        _, t = np.argwhere(count <= 0)[0]
        missing = int((count[:, t] <= 0).sum())
        raise AttackUndefined(
            f"reference: {missing} of {bank.num_examples} examples have no OUT reference model "
            f"when model {int(targets[t])} is the target; train more shadow models."
        )
    below_all = _loo.count_below(sorted_out, x)
    below = below_all - (gone & (removed < x))
    equal = _loo.count_below(sorted_out, x, inclusive=True) - below_all - (gone & (removed == x))
    skip_at = _loo.count_below(sorted_out, removed)  # first position of the removed value
    width = sorted_out.values.shape[1]

    def remaining(j):
        """The j-th smallest (0-based) value left in each column once `removed` is out."""
        index = j + (gone & (j >= skip_at))
        return np.take_along_axis(sorted_out.values, np.clip(index, 0, width - 1), axis=1)

    smallest, largest = remaining(np.zeros_like(count)), remaining(count - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        spacing = (largest - smallest) / (count - 1)
    spacing = np.where((count > 1) & (spacing > 0), spacing, np.nan)
    with np.errstate(all="ignore"):
        fallback = np.nanmedian(np.where(np.isnan(spacing).all(axis=0), 1.0, spacing), axis=0)
    spacing = np.where(np.isnan(spacing), fallback[None, :], spacing)
    return continuous_percentile_log_odds(
        x,
        below,
        equal,
        count,
        remaining(below - 1),
        remaining(below + equal),
        smallest,
        largest,
        spacing,
    )

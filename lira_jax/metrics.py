"""ROC-based metrics for membership inference (members are the positive class).

Conventions (those of the LiRA paper and its reference code):
  * A higher score means "more likely a member".
  * Tied scores form one threshold, so a tie never produces a staircase whose shape
    depends on the order of the examples.
  * TPR at FPR x is the largest TPR over thresholds whose FPR is strictly below x.
  * With n negatives the smallest non-zero FPR is 1/n, so TPR at FPR x < 1/n only
    measures the threshold that admits no negative at all; `summarize` flags such levels.

Bootstrap intervals (`bootstrap_intervals`): percentile intervals over resamples of
*units* (by default each score; in the attack evaluation each example, so the T scores of
one example under T target models move together). A resample is a vector of multiplicities
W[u] drawn by sampling U units with replacement; the ROC of a resample is the weighted ROC
of the original scores, so the scores are sorted once and every resample costs a gather
and two cumulative sums over the n scores — B resamples of n scores cost O(B·n), processed
in chunks of resamples that bound memory. The same `seed` gives the same resamples for
every attack scored on the same units (paired intervals).

Binomial proportions (success rates of label inference): exact Clopper–Pearson intervals
(`clopper_pearson`), from beta quantiles.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "FPR_LEVELS",
    "auc",
    "balanced_accuracy",
    "bootstrap_intervals",
    "clopper_pearson",
    "operating_point",
    "roc_curve",
    "summarize",
    "summarize_curve",
    "tpr_at_fpr",
]

FPR_LEVELS: tuple[float, ...] = (1e-2, 1e-3, 1e-4, 1e-5)


def _validate(scores: np.ndarray, is_member: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64).ravel()
    truth = np.asarray(is_member).ravel()
    if truth.dtype != bool:
        if not np.isin(truth, (0, 1)).all():
            raise ValueError("is_member must be boolean (or 0/1).")
        truth = truth.astype(bool)
    if scores.shape != truth.shape:
        raise ValueError(f"scores ({scores.shape}) and is_member ({truth.shape}) differ in size.")
    num_nan = int(np.isnan(scores).sum())
    if num_nan:
        raise ValueError(f"scores contain {num_nan} NaN value(s); an attack produced no score.")
    num_pos = int(truth.sum())
    num_neg = truth.size - num_pos
    if num_pos == 0 or num_neg == 0:
        raise ValueError(
            f"ROC needs both members and non-members, got {num_pos} positives and "
            f"{num_neg} negatives."
        )
    return scores, truth


def roc_curve(scores: np.ndarray, is_member: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROC curve with one point per distinct score, from (0, 0) to (1, 1).

    Args:
      scores: [n] float scores, higher = more likely a member. No NaN.
      is_member: [n] bool ground truth.

    Returns:
      (fpr, tpr), each [k + 1] float64 with k the number of distinct scores; point i + 1
      is "predict member iff score >= the (i+1)-th largest distinct score".

    Raises:
      ValueError: on NaN scores, mismatched sizes, or no positives / no negatives.
    """
    scores, truth = _validate(scores, is_member)
    order = np.argsort(-scores, kind="stable")
    s, t = scores[order], truth[order]
    tp = np.cumsum(t)
    fp = np.cumsum(~t)
    # Last index of each run of equal scores: the threshold admits the whole tie at once.
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), s.size - 1]
    tp = np.r_[0, tp[last]]
    fp = np.r_[0, fp[last]]
    return fp / fp[-1], tp / tp[-1]


def auc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Area under the ROC curve by the trapezoid rule (ties count as one half)."""
    return float(np.trapezoid(tpr, fpr))


def balanced_accuracy(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Best balanced accuracy over thresholds: max of 1 − (FPR + FNR) / 2."""
    return float(np.max(1.0 - (fpr + (1.0 - tpr)) / 2.0))


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, max_fpr: float) -> float:
    """Largest TPR among thresholds with FPR strictly below `max_fpr` (0 if none)."""
    ok = np.asarray(fpr) < max_fpr
    return float(np.max(np.asarray(tpr)[ok])) if ok.any() else 0.0


def summarize(
    scores: np.ndarray,
    is_member: np.ndarray,
    fpr_levels: Sequence[float] = FPR_LEVELS,
    *,
    num_bootstrap: int = 0,
    seed: int = 0,
    units: np.ndarray | None = None,
    level: float = 0.95,
) -> dict:
    """All headline metrics of one attack, as a JSON-serialisable dict.

    Args:
      scores: [n] float scores, higher = more likely a member.
      is_member: [n] bool ground truth.
      fpr_levels: FPR levels at which to report the TPR.
      num_bootstrap: if > 0, add "ci" from `bootstrap_intervals` with this many resamples.
      seed: bootstrap seed.
      units: [n] resampling unit of each score (see `bootstrap_intervals`).
      level: confidence level of the intervals.

    Returns:
      {"auc", "balanced_accuracy", "tpr_at_fpr": {str(level): tpr}, "num_positives",
       "num_negatives", "min_meaningful_fpr": 1 / num_negatives,
       "fpr_out_of_reach": [str(level) for levels with level * num_negatives < 1]}, plus
       "ci" when num_bootstrap > 0.

    Raises:
      ValueError: on NaN scores or when there are no positives or no negatives.
    """
    scores, truth = _validate(scores, is_member)
    fpr, tpr = roc_curve(scores, truth)
    num_pos = int(truth.sum())
    summary = summarize_curve(fpr, tpr, num_pos, truth.size - num_pos, fpr_levels)
    if num_bootstrap > 0:
        summary["ci"] = bootstrap_intervals(
            scores,
            truth,
            num_bootstrap=num_bootstrap,
            seed=seed,
            units=units,
            level=level,
            fpr_levels=fpr_levels,
        )
    return summary


def summarize_curve(
    fpr: np.ndarray,
    tpr: np.ndarray,
    num_positives: int,
    num_negatives: int,
    fpr_levels: Sequence[float] = FPR_LEVELS,
) -> dict:
    """`summarize` from an already computed ROC curve (saves a sort of the scores).

    Args:
      fpr, tpr: the curve from `roc_curve`.
      num_positives, num_negatives: the class sizes behind it.
      fpr_levels: FPR levels at which to report the TPR.

    Returns:
      The dict of `summarize` (without "ci").
    """
    num_neg = int(num_negatives)
    return {
        "auc": auc(fpr, tpr),
        "balanced_accuracy": balanced_accuracy(fpr, tpr),
        "tpr_at_fpr": {str(lv): tpr_at_fpr(fpr, tpr, lv) for lv in fpr_levels},
        "num_positives": int(num_positives),
        "num_negatives": num_neg,
        "min_meaningful_fpr": 1.0 / num_neg,
        "fpr_out_of_reach": [str(lv) for lv in fpr_levels if lv * num_neg < 1],
    }


def operating_point(decisions: np.ndarray, is_member: np.ndarray) -> dict:
    """TPR, FPR and balanced accuracy of one fixed decision rule.

    Args:
      decisions: [n] bool, True = predicted member.
      is_member: [n] bool ground truth (both classes present).

    Returns:
      {"tpr", "fpr", "balanced_accuracy"}.
    """
    decisions = np.asarray(decisions, dtype=bool).ravel()
    _, truth = _validate(np.zeros(decisions.shape), is_member)
    if decisions.shape != truth.shape:
        raise ValueError(f"decisions ({decisions.shape}) and is_member ({truth.shape}) differ.")
    tpr = float(np.mean(decisions[truth]))
    fpr = float(np.mean(decisions[~truth]))
    return {"tpr": tpr, "fpr": fpr, "balanced_accuracy": 0.5 * (tpr + 1.0 - fpr)}


def _interval(values: np.ndarray, level: float) -> list[float] | None:
    """Percentile interval of the finite entries (None if there are none)."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    lo, hi = np.percentile(values, [50 * (1 - level), 50 * (1 + level)])
    return [float(lo), float(hi)]


def bootstrap_intervals(
    scores: np.ndarray,
    is_member: np.ndarray,
    *,
    num_bootstrap: int,
    seed: int = 0,
    units: np.ndarray | None = None,
    level: float = 0.95,
    fpr_levels: Sequence[float] = FPR_LEVELS,
    decisions: np.ndarray | None = None,
    chunk_elements: int = 1 << 24,
) -> dict:
    """Bootstrap percentile intervals of the ROC metrics (see the module docstring).

    Args:
      scores: [n] float scores, higher = more likely a member.
      is_member: [n] bool ground truth.
      num_bootstrap: number of resamples B (>= 1).
      seed: seed of the resampling.
      units: [n] int resampling unit of each score (e.g. the example index when scores
        of several target models are pooled); default: every score is its own unit.
      level: confidence level in (0, 1).
      fpr_levels: FPR levels for the TPR intervals.
      decisions: optional [n] bool fixed decision rule; adds "operating_point" intervals.
      chunk_elements: about how many (resample, score) pairs are held at once.

    Returns:
      {"auc": [lo, hi], "balanced_accuracy": [lo, hi], "tpr_at_fpr": {str(level): [lo, hi]},
       "num_bootstrap": B, "num_valid": resamples with both classes, "level": level},
      plus "operating_point": {"tpr", "fpr", "balanced_accuracy": [lo, hi]} when
      `decisions` is given. An interval is None if no resample had both classes.

    Raises:
      ValueError: on bad arguments (as `summarize`, plus num_bootstrap < 1, a level
        outside (0, 1), or units of the wrong shape).
    """
    scores, truth = _validate(scores, is_member)
    if num_bootstrap < 1:
        raise ValueError(f"{num_bootstrap=} must be >= 1.")
    if not 0.0 < level < 1.0:
        raise ValueError(f"{level=} must lie in (0, 1), e.g. 0.95.")
    n = scores.size
    if units is None:
        unit = np.arange(n)
    else:
        units = np.asarray(units).ravel()
        if units.shape != (n,):
            raise ValueError(f"units must have shape ({n},) like the scores, got {units.shape}.")
        _, unit = np.unique(units, return_inverse=True)
    num_units = int(unit.max()) + 1

    order = np.argsort(-scores, kind="stable")
    s, t, u = scores[order], truth[order], unit[order]
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), n - 1]
    # Number of positive / negative scores up to the end of each run of tied scores.
    pos_upto = np.cumsum(t)[last]
    neg_upto = (last + 1) - pos_upto
    pos_units, neg_units = u[t], u[~t]
    if decisions is not None:
        dec = np.asarray(decisions, dtype=bool).ravel()
        if dec.shape != (n,):
            raise ValueError(f"decisions must have shape ({n},), got {dec.shape}.")
        per_unit = np.stack(
            [np.bincount(unit, w, minlength=num_units) for w in (truth & dec, truth, ~truth & dec)]
            + [np.bincount(unit, ~truth, minlength=num_units)],
            axis=1,
        )

    levels = [str(lv) for lv in fpr_levels]
    auc_b = np.empty(num_bootstrap)
    bal_b = np.empty(num_bootstrap)
    tpr_b = np.empty((num_bootstrap, len(levels)))
    op_b = np.empty((num_bootstrap, 3))
    rng = np.random.default_rng(seed)
    step = max(1, chunk_elements // max(n, num_units))
    for b0 in range(0, num_bootstrap, step):
        b = min(step, num_bootstrap - b0)
        draws = rng.integers(0, num_units, size=(b, num_units))
        flat = (draws + num_units * np.arange(b)[:, None]).ravel()
        weights = np.bincount(flat, minlength=b * num_units).reshape(b, num_units)
        weights = weights.astype(np.int32)
        tp = _weighted_counts(weights[:, pos_units], pos_upto)
        fp = _weighted_counts(weights[:, neg_units], neg_upto)
        num_pos, num_neg = tp[:, -1], fp[:, -1]
        valid = (num_pos > 0) & (num_neg > 0)
        # In float64: the int32 product overflows beyond ~46,000 scores per class.
        denom = np.where(valid, num_pos.astype(np.float64) * num_neg, 1.0)
        rows = slice(b0, b0 + b)
        # Trapezoid rule on counts: Σ Δfp · (tp_prev + tp) / (2 P N).
        area = np.einsum(
            "bk,bk->b", np.diff(fp, axis=1).astype(np.float64), (tp[:, :-1] + tp[:, 1:]) * 1.0
        )
        auc_b[rows] = np.where(valid, area / (2.0 * denom), np.nan)
        gap = np.max(
            tp * num_neg[:, None].astype(np.int64) - fp * num_pos[:, None].astype(np.int64), axis=1
        )
        bal_b[rows] = np.where(valid, 0.5 + 0.5 * gap / denom, np.nan)
        for r in range(b):
            # fp is non-decreasing: the points with FPR < level are a prefix of the row.
            # (Integer queries: a float query would make searchsorted copy the row.)
            limit = np.ceil(np.asarray(fpr_levels) * num_neg[r]).astype(fp.dtype)
            admitted = np.searchsorted(fp[r], limit, side="left")
            tpr_b[b0 + r] = tp[r, np.maximum(admitted - 1, 0)] / max(num_pos[r], 1)
        tpr_b[b0 + np.flatnonzero(~valid)] = np.nan
        if decisions is not None:
            c = weights.astype(np.float64) @ per_unit  # [b, 4]
            with np.errstate(invalid="ignore", divide="ignore"):
                op_tpr, op_fpr = c[:, 0] / c[:, 1], c[:, 2] / c[:, 3]
            op_b[rows] = np.stack([op_tpr, op_fpr, 0.5 * (op_tpr + 1.0 - op_fpr)], axis=1)

    out = {
        "auc": _interval(auc_b, level),
        "balanced_accuracy": _interval(bal_b, level),
        "tpr_at_fpr": {lv: _interval(tpr_b[:, i], level) for i, lv in enumerate(levels)},
        "num_bootstrap": int(num_bootstrap),
        "num_valid": int(np.isfinite(auc_b).sum()),
        "level": float(level),
    }
    if decisions is not None:
        out["operating_point"] = {
            key: _interval(op_b[:, i], level)
            for i, key in enumerate(("tpr", "fpr", "balanced_accuracy"))
        }
    return out


def _weighted_counts(weights: np.ndarray, upto: np.ndarray) -> np.ndarray:
    """Weighted number of scores among the first upto[k] of one class, per resample.

    Args:
      weights: [b, m] int32 weights of the class's scores in decreasing-score order.
      upto: [k] how many of them each ROC point admits.

    Returns:
      [b, k + 1] counts (int32: they sum to at most the number of scores), starting with
      the (0, 0) point.
    """
    cum = np.zeros((weights.shape[0], weights.shape[1] + 1), dtype=np.int32)
    np.cumsum(weights, axis=1, out=cum[:, 1:])
    return cum[:, np.r_[0, upto]]


def clopper_pearson(successes: int, trials: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper–Pearson) two-sided interval of a binomial proportion.

    The lower end is the p whose Binomial(trials, p) upper tail P[X >= successes] is
    (1 − level)/2, i.e. the (1 − level)/2 quantile of Beta(successes, trials − successes + 1);
    the upper end likewise. The interval covers the true proportion with probability at
    least `level` (conservative); each end is a one-sided bound at level (1 + level)/2.

    Args:
      successes: k, 0 <= k <= trials.
      trials: n >= 1.
      level: confidence level in (0, 1).

    Returns:
      (lower, upper); lower = 0 when k = 0 and upper = 1 when k = n.
    """
    from scipy import stats

    k, n = int(successes), int(trials)
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= successes <= trials and trials >= 1; got {k} of {n}.")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level={level} must be in (0, 1), e.g. 0.95.")
    alpha = 1.0 - level
    lower = 0.0 if k == 0 else float(stats.beta.ppf(alpha / 2, k, n - k + 1))
    upper = 1.0 if k == n else float(stats.beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lower, upper

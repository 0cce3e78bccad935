"""ROC-based metrics for membership inference (members are the positive class).

Conventions (those of the LiRA paper and its reference code):
  * A higher score means "more likely a member".
  * Tied scores form one threshold, so a tie never produces a staircase whose shape
    depends on the order of the examples.
  * TPR at FPR x is the largest TPR over thresholds whose FPR is strictly below x.
  * With n negatives the smallest non-zero FPR is 1/n, so TPR at FPR x < 1/n only
    measures the threshold that admits no negative at all; `summarize` flags such levels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "FPR_LEVELS",
    "auc",
    "balanced_accuracy",
    "roc_curve",
    "summarize",
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
    scores: np.ndarray, is_member: np.ndarray, fpr_levels: Sequence[float] = FPR_LEVELS
) -> dict:
    """All headline metrics of one attack, as a JSON-serialisable dict.

    Args:
      scores: [n] float scores, higher = more likely a member.
      is_member: [n] bool ground truth.
      fpr_levels: FPR levels at which to report the TPR.

    Returns:
      {"auc", "balanced_accuracy", "tpr_at_fpr": {str(level): tpr}, "num_positives",
       "num_negatives", "min_meaningful_fpr": 1 / num_negatives,
       "fpr_out_of_reach": [str(level) for levels with level * num_negatives < 1]}.

    Raises:
      ValueError: on NaN scores or when there are no positives or no negatives.
    """
    scores, truth = _validate(scores, is_member)
    fpr, tpr = roc_curve(scores, truth)
    num_pos = int(truth.sum())
    num_neg = int(truth.size - num_pos)
    return {
        "auc": auc(fpr, tpr),
        "balanced_accuracy": balanced_accuracy(fpr, tpr),
        "tpr_at_fpr": {str(level): tpr_at_fpr(fpr, tpr, level) for level in fpr_levels},
        "num_positives": num_pos,
        "num_negatives": num_neg,
        "min_meaningful_fpr": 1.0 / num_neg,
        "fpr_out_of_reach": [str(level) for level in fpr_levels if level * num_neg < 1],
    }

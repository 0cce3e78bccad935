r"""A DP audit: empirical ε lower bounds from membership scores, beside the accountant's ε.

    entry, (in_scores, out_scores) = audit_scores(scores, keep, canary, delta=1e-5)

Differential privacy bounds every test of "was this example in the training set?": for a
(ε, δ)-DP training algorithm and any decision rule, TPR <= e^ε·FPR + δ. A store is already
the experiment that tests it: every example is IN for a random half of the models, and the
attacks score every (model, example) pair. An audit turns those scores into lower bounds on
the ε the training algorithm can have (jax-privacy's `auditing.CanaryScoreAuditor`, which
takes "higher score = IN"); a bound above the accountant's ε means the clipping, the
noise, the sampling or the accounting is broken.

Inputs (all the LiRA protocol's, `lira_jax.attacks.evaluate`): ``scores`` [T, N], the
attack's score of every example under each of the first T models as target (its shadows
are the other M − 1 models); ``keep`` [T, N], the targets' membership; ``canary`` [N] bool,
the examples audited (the planted canaries of `lira_jax.data.audit_canaries`, or every
example). Figures, each at confidence 1 − significance (`DEFAULT_SIGNIFICANCE` 0.05):

- ``epsilon_lower_multi_model``: every (target, canary) pair is a trial; IN pairs give the
  IN scores, OUT pairs the OUT scores, pooled over the targets. jax-privacy's
  `epsilon_clopper_pearson(significance, delta)`: at every threshold, a Clopper–Pearson
  lower bound on the TPR and upper bound on the FPR (each at significance / 2), ε >=
  log((TPR_lo − δ) / FPR_hi), maximised over thresholds with a Bonferroni correction over
  all of them (one-sided: high scores are guessed IN).
- ``epsilon_lower_one_run_*``: the bound of Steinke, Nasr & Jagielski 2023 ("Privacy
  auditing with one (1) training run"), which needs one model: its canaries are IN or OUT
  independently with probability 1/2 (true for a store's keep row when pkeep = 0.5: its
  columns are independent), and the guesses "IN" above a threshold are counted
  (`epsilon_one_run`, Bonferroni over thresholds). ``_mean``: the mean over the T targets
  of their bounds at `significance` (a summary, not itself a bound at that level);
  ``_max``: the largest over targets of their bounds at significance / T, a bound at
  level `significance` by the union bound.
- ``epsilon_lower_one_run_fdp_*``: the same for the one-run f-DP bound of Mahloujifar et
  al. 2024 (`epsilon_one_run_fdp`). It tests the claim "the mechanism's trade-off curve
  is the Gaussian one with this (ε, δ)", which is stronger than (ε, δ)-DP: on randomised
  response at ε = 1, 2, 4 (pure ε-DP, not Gaussian) it exceeded ε
  (`tests/test_dp_audit.py`). DP-SGD is close to Gaussian after many steps, not exactly,
  so these figures are reported and never checked as violations.
- ``tpr_at_fpr`` {"0.01", "0.001"} and ``auc``: of the pooled scores (jax-privacy's
  `tpr_at_given_fpr`, interpolating between thresholds, and `attack_auroc`), with a
  bootstrap interval of the AUC when asked.

A violation is an (ε, δ) lower bound that holds at level `significance` (`BOUND_KEYS`:
multi-model and one-run max) above the accountant's ε: on a correct run each happens with
probability at most `significance`. Caveat, shared with the literature's many-model
audits: pooling treats the pairs as independent trials, while the pairs of one target share
its training run and the targets share their shadows; the one-run bounds need no such
assumption.

Design notes: numpy on the host, as jax-privacy's auditor; the bound functions take plain
arrays, so a store, a synthetic mechanism and an outside target are audited alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from jax_privacy import auditing

__all__ = [
    "BOUND_KEYS",
    "DEFAULT_SIGNIFICANCE",
    "FPR_LEVELS",
    "audit_scores",
    "multi_model_bounds",
    "one_run_bounds",
    "pooled_scores",
    "violations",
]

DEFAULT_SIGNIFICANCE = 0.05
FPR_LEVELS = (0.01, 0.001)
# The (ε, δ) lower bounds at level `significance`: checked against the accountant's ε.
BOUND_KEYS = ("epsilon_lower_multi_model", "epsilon_lower_one_run_max")
_ONE_RUN_KEYS = (
    "epsilon_lower_one_run_mean",
    "epsilon_lower_one_run_max",
    "epsilon_lower_one_run_fdp_mean",
    "epsilon_lower_one_run_fdp_max",
)


def _check(scores, keep, canary) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    keep = np.asarray(keep, dtype=bool)
    canary = np.asarray(canary, dtype=bool)
    if scores.ndim != 2 or keep.shape != scores.shape or canary.shape != scores.shape[1:]:
        raise ValueError(
            f"scores {scores.shape}, keep {keep.shape} and canary {canary.shape} must be "
            "[T, N], [T, N] and [N]: each target's score and membership of every example, and "
            "which examples are audited."
        )
    if not canary.any():
        raise ValueError("canary selects no example: audit at least one (or all of them).")
    if not np.isfinite(scores[:, canary]).all():
        raise ValueError("scores of the audited examples contain NaN/inf; fix the attack first.")
    return scores, keep, canary


def _check_levels(significance: float, delta: float) -> None:
    if not 0.0 < significance < 0.5:
        raise ValueError(f"significance={significance} must be in (0, 0.5), e.g. 0.05.")
    if not 0.0 < delta < 1.0:
        raise ValueError(f"delta={delta} must be in (0, 1), e.g. the run's dp_delta 1e-5.")


def pooled_scores(scores, keep, canary) -> tuple[np.ndarray, np.ndarray]:
    """(IN scores, OUT scores) of the audited (target, canary) pairs, target-major.

    Args:
      scores: [T, N] attack scores (higher = more likely IN).
      keep: [T, N] bool, the targets' membership.
      canary: [N] bool, the audited examples.

    Returns:
      (scores[t, n] for keep[t, n] and canary[n], scores[t, n] for ~keep[t, n] and canary[n]),
      both float64 in the order of `scores[:, canary].ravel()`.
    """
    scores, keep, canary = _check(scores, keep, canary)
    s, k = scores[:, canary].ravel(), keep[:, canary].ravel()
    return s[k], s[~k]


def _auditor(in_scores: np.ndarray, out_scores: np.ndarray) -> auditing.CanaryScoreAuditor:
    if in_scores.size == 0 or out_scores.size == 0:
        raise ValueError(
            f"{in_scores.size} IN and {out_scores.size} OUT canary scores: an audit needs both; "
            "use more canaries or targets."
        )
    return auditing.CanaryScoreAuditor(in_scores, out_scores)


def multi_model_bounds(
    in_scores: np.ndarray,
    out_scores: np.ndarray,
    *,
    delta: float,
    significance: float = DEFAULT_SIGNIFICANCE,
    fpr_levels: Sequence[float] = FPR_LEVELS,
    num_bootstrap: int = 0,
    seed: int = 0,
) -> dict:
    """The pooled figures of IN / OUT canary scores (see the module notes).

    Returns:
      {"epsilon_lower_multi_model", "tpr_at_fpr": {str(fpr): tpr}, "auc", "auc_ci"
      ([lo, hi] at 1 − significance from `num_bootstrap` resamples, or None),
      "num_in", "num_out"}.
    """
    _check_levels(significance, delta)
    auditor = _auditor(np.asarray(in_scores, np.float64), np.asarray(out_scores, np.float64))
    tpr = auditor.tpr_at_given_fpr(np.asarray(fpr_levels, np.float64))
    ci = None
    if num_bootstrap > 0:
        params = auditing.BootstrapParams(
            num_samples=int(num_bootstrap),
            quantiles=(significance / 2, 1 - significance / 2),
            seed=seed,
        )
        ci = [float(v) for v in auditor.attack_auroc(bootstrap_params=params)]
    return {
        "epsilon_lower_multi_model": float(auditor.epsilon_clopper_pearson(significance, delta)),
        "tpr_at_fpr": {f"{f:g}": float(t) for f, t in zip(fpr_levels, tpr, strict=True)},
        "auc": float(auditor.attack_auroc()),
        "auc_ci": ci,
        "num_in": int(np.size(in_scores)),
        "num_out": int(np.size(out_scores)),
    }


def one_run_bounds(
    scores, keep, canary, *, delta: float, significance: float = DEFAULT_SIGNIFICANCE
) -> dict:
    """The one-run bounds of each target on its own canaries (see the module notes).

    Returns:
      {"epsilon_lower_one_run_mean", "epsilon_lower_one_run_max",
       "epsilon_lower_one_run_fdp_mean", "epsilon_lower_one_run_fdp_max",
       "one_run_per_target": [T] bounds at `significance`, "one_run_fdp_per_target": [T]};
      targets whose canaries are all IN or all OUT give no bound and are left out (None
      when none is left).
    """
    _check_levels(significance, delta)
    scores, keep, canary = _check(scores, keep, canary)
    t_count = scores.shape[0]
    per, per_fdp, best, best_fdp = [], [], [], []
    for t in range(t_count):
        s, k = scores[t, canary], keep[t, canary]
        if k.all() or not k.any():
            continue
        auditor = _auditor(s[k], s[~k])
        per.append(float(auditor.epsilon_one_run(significance, delta)))
        per_fdp.append(float(auditor.epsilon_one_run_fdp(significance, delta)))
        if t_count == 1:
            best.append(per[-1])
            best_fdp.append(per_fdp[-1])
        else:
            best.append(float(auditor.epsilon_one_run(significance / t_count, delta)))
            best_fdp.append(float(auditor.epsilon_one_run_fdp(significance / t_count, delta)))
    summary = lambda v, f: float(f(v)) if v else None  # noqa: E731
    return {
        "epsilon_lower_one_run_mean": summary(per, np.mean),
        "epsilon_lower_one_run_max": summary(best, np.max),
        "epsilon_lower_one_run_fdp_mean": summary(per_fdp, np.mean),
        "epsilon_lower_one_run_fdp_max": summary(best_fdp, np.max),
        "one_run_per_target": per,
        "one_run_fdp_per_target": per_fdp,
    }


def violations(entry: dict, accountant_epsilon: float | None, tolerance: float = 1e-9) -> list:
    """The `BOUND_KEYS` of `entry` whose value exceeds the accountant's ε (none when ε is
    None or inf: a non-private run has no claim to violate)."""
    if accountant_epsilon is None or math.isinf(accountant_epsilon):
        return []
    return [
        k
        for k in BOUND_KEYS
        if entry.get(k) is not None and entry[k] > accountant_epsilon + tolerance
    ]


def audit_scores(
    scores,
    keep,
    canary,
    *,
    delta: float,
    accountant_epsilon: float | None = None,
    significance: float = DEFAULT_SIGNIFICANCE,
    fpr_levels: Sequence[float] = FPR_LEVELS,
    num_bootstrap: int = 0,
    seed: int = 0,
    one_run: bool = True,
) -> tuple[dict, tuple[np.ndarray, np.ndarray]]:
    """Every figure of one attack's scores, and the violation check.

    Args:
      scores, keep, canary: as in `pooled_scores`.
      delta: δ of the bounds (the run's dp_delta).
      accountant_epsilon: the accountant's ε at `delta` (None or inf: non-private).
      significance, fpr_levels, num_bootstrap, seed: as in `multi_model_bounds`.
      one_run: also the one-run bounds (they need each target's canaries to be IN with
        probability 1/2: pkeep = 0.5).

    Returns:
      (entry, (in_scores, out_scores)): entry = {"accountant_epsilon" (None when
      non-private), "delta", "significance", "num_targets", "num_canaries", the
      `multi_model_bounds` and `one_run_bounds` keys (one-run keys None when off),
      "violations": the `BOUND_KEYS` above the accountant's ε, "violation": bool}; the
      pooled scores that entered the multi-model bound.
    """
    in_scores, out_scores = pooled_scores(scores, keep, canary)
    entry = {
        "accountant_epsilon": (
            None
            if accountant_epsilon is None or math.isinf(accountant_epsilon)
            else float(accountant_epsilon)
        ),
        "delta": float(delta),
        "significance": float(significance),
        "num_targets": int(np.shape(scores)[0]),
        "num_canaries": int(np.sum(canary)),
    }
    entry.update(
        multi_model_bounds(
            in_scores,
            out_scores,
            delta=delta,
            significance=significance,
            fpr_levels=fpr_levels,
            num_bootstrap=num_bootstrap,
            seed=seed,
        )
    )
    if one_run:
        entry.update(one_run_bounds(scores, keep, canary, delta=delta, significance=significance))
    else:
        entry.update(dict.fromkeys(_ONE_RUN_KEYS))
    entry["violations"] = violations(entry, accountant_epsilon)
    entry["violation"] = bool(entry["violations"])
    return entry, (in_scores, out_scores)

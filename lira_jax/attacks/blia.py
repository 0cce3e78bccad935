"""Passive label inference on binary classifiers (BLIA) and the empirical label-DP audit.

The BLIA paper (Khan et al. 2025, arXiv 2503.12801) trains binary classifiers on data where a
subset of examples, the canaries, has half of its labels flipped, so a canary's trained label
is independent of its features; two passive attacks then read only the trained model's output
on a canary (one forward pass, no shadow models) and guess its label. Only the abstract is at
hand; the rules below are this project's reading of it (docs/design.md, "Label-DP and BLIA"):

- confidence rule: ŷ = 1[p(1|x) >= τ], with τ = 0.5, or τ calibrated per target model on its
  non-canary training examples (the threshold that best separates their known labels; ties
  broken towards τ = 0.5);
- log-loss margin rule: Δ(x) = ℓ(x, 0) − ℓ(x, 1) = log p(1|x) − log p(0|x) is the loss
  margin of candidate label 1 over the other label; decide ŷ = 1[Δ > 0] only when |Δ| >= δ,
  and report coverage (the fraction decided) with the success on the decided pairs.

Success is counted over (model, canary) pairs in which the canary is IN for that model,
pooled over the store's models, against the model's *private* label (after the canary flip,
before any randomized response): the label that label-DP protects. The same rules on OUT
pairs (the model never saw the canary, whose private label for that model is a fair coin)
are the control: they must sit at 50 %. Intervals are exact Clopper–Pearson intervals that
treat pairs as independent trials; pairs of one model share a training run, so they are
approximate (per-model resampling would widen them somewhat).

The audit: under ε-label-DP the posterior odds of a uniformly distributed binary label move
by at most e^ε whatever the output, so no rule — abstaining ones included, conditionally on
deciding — infers it with probability above e^ε / (1 + e^ε); under (ε, δ)-DP (DP-SGD, which
protects the whole example and so its label) the bound is (e^ε + δ) / (1 + e^ε). The measured
success's lower confidence bound s gives an empirical lower bound on ε: ε̂ = log(s / (1 − s))
(log((s − δ) / (1 − s)) against (ε, δ)); s above the bound means the mechanism is broken. The
bound is tight (a model that outputs exactly the label it trained on attains it), so the
violation flag asks for a stricter lower bound (`VIOLATION_LEVEL`) than the reported one.

The same audit on jax-privacy's `auditing.CanaryScoreAuditor` (`auditor_epsilon`): the
private label is the bit the mechanism protects, so the IN canary pairs of label 1 and of
label 0 are the auditor's two hypotheses and each rule's score is Δ. Under ε-label-DP
every event's probability moves by at most e^ε between them, so ε >= log((TPR − δ) / FPR)
for each decision event of a rule, with Clopper–Pearson bounds on TPR and FPR. That is a
different statistic from ε̂ above (one success rate under the uniform prior, both guesses
pooled): the point estimates agree when both labels are inferred equally well, the auditor's
interval is wider (two rates on half the pairs each) but it holds without the prior. Both
are reported (``epsilon_hat_auditor``); a violation of either is flagged.

Design notes: everything is numpy on the host in float64 (softmax differences of float32
logits). Functions take whole arrays — logits [M, N, C] or [M, N, A, C] (query `query` is
used, the identity by default), private_labels [M, N], keep [M, N], canary [N] — and return
plain dicts and frozen dataclasses, JSON-ready through `to_dict`.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence

import numpy as np
from jax_privacy import auditing

from lira_jax.metrics import clopper_pearson

DEFAULT_LEVEL = 0.95
# Confidence level of the violation flag. A perfectly memorising model attains the label-DP
# bound exactly, so a flag raised whenever the 95 % interval's lower end passed the bound
# would fire in 2.5 % of honest audits (and more often over an ε sweep and two attacks):
# the flag uses the 99.9 % interval's lower end instead (false alarms <= 0.05 % per check).
VIOLATION_LEVEL = 0.999
# Coverages (fractions of IN canary pairs decided) at which the margin curve is drawn.
DEFAULT_CURVE_COVERAGES = (1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05)


class LabelDPViolationWarning(UserWarning):
    """A measured success rate's lower confidence bound exceeds its DP bound."""


@dataclasses.dataclass(frozen=True)
class Rate:
    """A success rate over pairs, with its Clopper–Pearson interval.

    Attributes:
      successes: pairs whose label was inferred correctly.
      trials: pairs decided.
      rate: successes / trials (NaN with no trials).
      interval: (lower, upper) at `level` ((NaN, NaN) with no trials).
      level: confidence level of the interval.
    """

    successes: int
    trials: int
    rate: float
    interval: tuple[float, float]
    level: float

    @classmethod
    def of(cls, correct: np.ndarray, level: float = DEFAULT_LEVEL) -> Rate:
        """The rate of a bool array of per-pair outcomes."""
        k, n = int(np.sum(correct)), int(np.size(correct))
        if n == 0:
            return cls(0, 0, math.nan, (math.nan, math.nan), level)
        return cls(k, n, k / n, clopper_pearson(k, n, level), level)

    def to_dict(self) -> dict:
        nan_none = lambda v: None if math.isnan(v) else float(v)  # noqa: E731
        return {
            "success": nan_none(self.rate),
            "interval": [nan_none(v) for v in self.interval],
            "num_pairs": self.trials,
            "num_successes": self.successes,
            "level": self.level,
        }


# -- scores ---------------------------------------------------------------------------------


def label_margin(logits: np.ndarray, query: int = 0) -> np.ndarray:
    """Δ = ℓ(x, 0) − ℓ(x, 1) = log p(1|x) − log p(0|x) per (model, example), in float64.

    Positive Δ: label 1 has the lower loss. p(1|x) >= τ iff Δ >= log(τ / (1 − τ)).

    Args:
      logits: [M, N, 2] or [M, N, A, 2].
      query: which of the A queries (ignored for 3-D logits).

    Returns:
      [M, N] float64.
    """
    logits = np.asarray(logits)
    if logits.ndim == 4:
        if not 0 <= query < logits.shape[2]:
            raise ValueError(f"query={query} is outside the logits' {logits.shape[2]} queries.")
        logits = logits[:, :, query]
    if logits.ndim != 3 or logits.shape[-1] != 2:
        raise ValueError(
            f"logits have shape {logits.shape}; BLIA needs a binary classifier's logits "
            "[M, N, 2] or [M, N, A, 2] (train on a binary task, e.g. --task=pair:A,B or parity)."
        )
    z = logits.astype(np.float64)
    # With two classes, log-softmax differences are exactly logit differences.
    return z[..., 1] - z[..., 0]


def _check_arrays(margin, private_labels, keep, canary):
    private_labels = np.asarray(private_labels)
    keep = np.asarray(keep, bool)
    canary = np.asarray(canary, bool)
    m, n = margin.shape
    if private_labels.shape != (m, n) or keep.shape != (m, n) or canary.shape != (n,):
        raise ValueError(
            f"shapes disagree: logits give [M, N] = [{m}, {n}], private_labels "
            f"{private_labels.shape}, keep {keep.shape}, canary {canary.shape} (want [M, N], "
            "[M, N], [N])."
        )
    if not np.isin(private_labels, (0, 1)).all():
        raise ValueError("private_labels must be binary (0/1) for BLIA.")
    if not canary.any():
        raise ValueError(
            "The store has no canaries (canary is all False); train with --num_canaries=K > 0."
        )
    return private_labels.astype(np.int64), keep, canary


def calibrate_thresholds(margin: np.ndarray, labels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-model margin thresholds t that maximise the accuracy of 1[Δ >= t] on `mask`.

    Candidates are midpoints between consecutive distinct Δ values of the calibration
    examples (and ±inf); among the best, the one closest to t = 0 (τ = 0.5) is taken.

    Args:
      margin: [M, N] Δ values (`label_margin`).
      labels: [M, N] known 0/1 labels.
      mask: [M, N] bool, the calibration examples of each model (at least one each).

    Returns:
      [M] float64 thresholds on Δ (p(1|x) >= sigmoid(t) is the same rule).
    """
    out = np.empty(margin.shape[0])
    for i in range(margin.shape[0]):
        d, y = margin[i][mask[i]], labels[i][mask[i]]
        if d.size == 0:
            raise ValueError(
                f"model {i} has no non-canary training example to calibrate a threshold on."
            )
        order = np.argsort(d, kind="stable")
        d, y = d[order], y[order]
        # Threshold between positions j-1 and j: examples j.. are predicted 1.
        zeros_before = np.concatenate([[0], np.cumsum(y == 0)])
        ones_from = np.concatenate([np.cumsum((y == 1)[::-1])[::-1], [0]])
        correct = zeros_before + ones_from  # [n + 1]
        valid = np.ones(d.size + 1, bool)
        valid[1:-1] = d[1:] != d[:-1]  # no threshold between equal values
        cand = np.concatenate([[-np.inf], (d[1:] + d[:-1]) / 2, [np.inf]])
        best = correct == correct[valid].max()
        best &= valid
        out[i] = cand[best][np.argmin(np.abs(cand[best]))]
    return out


# -- the two attacks ------------------------------------------------------------------------


def confidence_attack(
    logits: np.ndarray,
    private_labels: np.ndarray,
    keep: np.ndarray,
    canary: np.ndarray,
    *,
    threshold: float | str = 0.5,
    query: int = 0,
    level: float = DEFAULT_LEVEL,
) -> dict:
    """The confidence BLIA: ŷ = 1[p(1|x) >= τ] on every canary.

    Args:
      logits: [M, N, 2] or [M, N, A, 2] outputs of every model on the pool.
      private_labels: [M, N] 0/1 labels after the canary flips (the ground truth).
      keep: [M, N] bool membership.
      canary: [N] bool.
      threshold: τ in (0, 1), or "calibrated": per target model, the threshold that best
        separates its non-canary training examples' labels.
      query: the query index of 4-D logits.
      level: confidence level of the intervals.

    Returns:
      {"threshold": τ (float, or [M] list when calibrated), "in": Rate on IN pairs,
       "out": Rate on OUT pairs (the control)}.
    """
    margin = label_margin(logits, query)
    labels, keep, canary = _check_arrays(margin, private_labels, keep, canary)
    if threshold == "calibrated":
        t = calibrate_thresholds(margin, labels, keep & ~canary[None])
        tau = (1.0 / (1.0 + np.exp(-t))).tolist()
    elif isinstance(threshold, str) or not 0.0 < float(threshold) < 1.0:
        raise ValueError(f"threshold={threshold!r} must be in (0, 1) or 'calibrated'.")
    else:
        tau = float(threshold)
        t = np.full(margin.shape[0], math.log(tau / (1.0 - tau)))
    pred = (margin >= t[:, None]).astype(np.int64)
    correct = pred == labels
    in_pairs, out_pairs = keep & canary[None], ~keep & canary[None]
    return {
        "threshold": tau,
        "in": Rate.of(correct[in_pairs], level),
        "out": Rate.of(correct[out_pairs], level),
    }


def _margin_decisions(margin, labels, pairs, delta, level):
    decided = pairs & (np.abs(margin) >= delta)
    correct = (margin > 0).astype(np.int64) == labels
    return Rate.of(correct[decided], level), float(decided.sum() / max(pairs.sum(), 1))


def coverage_margin(
    logits: np.ndarray,
    keep: np.ndarray,
    canary: np.ndarray,
    coverage: float,
    *,
    query: int = 0,
) -> float:
    """The margin δ that decides (about) a `coverage` fraction of the IN canary pairs.

    It is a quantile of |Δ| over those pairs: it uses no label, so a rule with this δ is
    as honest as one with a fixed δ (the label-DP bound holds conditionally on deciding).
    """
    if not 0.0 < coverage <= 1.0:
        raise ValueError(f"coverage={coverage} must be in (0, 1].")
    margin = label_margin(logits, query)
    pairs = np.asarray(keep, bool) & np.asarray(canary, bool)[None]
    if not pairs.any():
        raise ValueError("No IN canary pairs: train with --num_canaries=K > 0.")
    return float(np.quantile(np.abs(margin[pairs]), 1.0 - coverage, method="lower"))


def margin_attack(
    logits: np.ndarray,
    private_labels: np.ndarray,
    keep: np.ndarray,
    canary: np.ndarray,
    *,
    margin: float | None = None,
    query: int = 0,
    level: float = DEFAULT_LEVEL,
) -> dict:
    """The log-loss margin BLIA: decide ŷ = 1[Δ > 0] when |Δ| >= δ, else abstain.

    Args:
      logits, private_labels, keep, canary, query, level: as in `confidence_attack`.
      margin: δ >= 0; None: the label-free median of |Δ| over IN canary pairs
        (`coverage_margin(..., 0.5)`: half the IN pairs are decided).

    Returns:
      {"margin": δ, "in": Rate on decided IN pairs, "coverage": decided fraction of IN pairs,
       "out": Rate on decided OUT pairs (control), "out_coverage": likewise}.
    """
    d = label_margin(logits, query)
    labels, keep, canary = _check_arrays(d, private_labels, keep, canary)
    if margin is None:
        margin = coverage_margin(logits, keep, canary, 0.5, query=query)
    if not float(margin) >= 0.0:
        raise ValueError(f"margin={margin} must be >= 0 (a log-loss difference).")
    in_rate, in_cov = _margin_decisions(d, labels, keep & canary[None], margin, level)
    out_rate, out_cov = _margin_decisions(d, labels, ~keep & canary[None], margin, level)
    return {
        "margin": float(margin),
        "in": in_rate,
        "coverage": in_cov,
        "out": out_rate,
        "out_coverage": out_cov,
    }


def margin_curve(
    logits: np.ndarray,
    private_labels: np.ndarray,
    keep: np.ndarray,
    canary: np.ndarray,
    *,
    margins: Sequence[float] | None = None,
    query: int = 0,
    level: float = DEFAULT_LEVEL,
) -> dict:
    """Coverage and success of the margin rule over a sweep of δ.

    Args:
      margins: the δ values (sorted ascending in the output); None: the label-free margins
        at `DEFAULT_CURVE_COVERAGES` of the IN pairs.

    Returns:
      {"margin": [K], "coverage": [K], "success": [K], "interval": [K][2], "num_decided": [K],
       "control_success": [K]} as plain lists (success None where nothing is decided).
    """
    if margins is None:
        margins = [
            coverage_margin(logits, keep, canary, c, query=query) for c in DEFAULT_CURVE_COVERAGES
        ]
    margins = sorted({float(m) for m in margins})
    rows = [
        margin_attack(logits, private_labels, keep, canary, margin=m, query=query, level=level)
        for m in margins
    ]
    return {
        "margin": margins,
        "coverage": [r["coverage"] for r in rows],
        "success": [r["in"].to_dict()["success"] for r in rows],
        "interval": [r["in"].to_dict()["interval"] for r in rows],
        "num_decided": [r["in"].trials for r in rows],
        "control_success": [r["out"].to_dict()["success"] for r in rows],
    }


# -- the label-DP audit ---------------------------------------------------------------------


def success_bound(
    label_dp_epsilon: float | None = None,
    dp_epsilon: float | None = None,
    dp_delta: float = 0.0,
) -> float:
    """The largest success any rule can have in inferring a uniform binary private label.

    min(e^ε / (1 + e^ε) for ε-label-DP, (e^ε' + δ) / (1 + e^ε') for (ε', δ)-DP); 1 when
    neither is given (None or inf).
    """
    bound = 1.0
    if label_dp_epsilon is not None and not math.isinf(label_dp_epsilon):
        if label_dp_epsilon < 0:
            raise ValueError(f"label_dp_epsilon={label_dp_epsilon} must be >= 0.")
        bound = min(bound, 1.0 / (1.0 + math.exp(-label_dp_epsilon)))
    if dp_epsilon is not None and not math.isinf(dp_epsilon):
        if dp_epsilon < 0 or not 0.0 <= dp_delta < 1.0:
            raise ValueError(
                f"dp_epsilon={dp_epsilon} must be >= 0 and dp_delta={dp_delta} in [0, 1)."
            )
        bound = min(bound, (math.exp(dp_epsilon) + dp_delta) / (1.0 + math.exp(dp_epsilon)))
    return bound


def empirical_epsilon(lower: float, delta: float = 0.0) -> float:
    """ε̂ = log((s − δ) / (1 − s)) from a lower confidence bound s on success (0 if s <= 1/2
    or s <= δ: no evidence against any ε; inf if s = 1)."""
    if math.isnan(lower) or lower <= 0.5 or lower <= delta:
        return 0.0
    if lower >= 1.0:
        return math.inf
    return max(0.0, math.log((lower - delta) / (1.0 - lower)))


def audit(
    rate: Rate,
    *,
    label_dp_epsilon: float | None = None,
    dp_epsilon: float | None = None,
    dp_delta: float = 0.0,
    what: str = "success",
    violation_level: float = VIOLATION_LEVEL,
) -> dict:
    """Compares a measured success with the DP bounds; warns loudly on a violation.

    Args:
      rate: the attack's success on IN pairs.
      label_dp_epsilon: ε of randomized response (None/inf: off).
      dp_epsilon, dp_delta: the DP-SGD accountant's (ε, δ) (None: no DP-SGD).
      what: names the attack in the warning.
      violation_level: confidence level of the lower bound that must pass the bound for a
        violation (see `VIOLATION_LEVEL`).

    Returns:
      {"bound", "lower" (the interval's lower end), "epsilon_hat" (label-DP reading, δ = 0),
       "epsilon_hat_dp" (against the accountant's δ; None without DP-SGD), "label_dp_epsilon",
       "dp_epsilon", "violation_lower" (the lower end at `violation_level`), "violation"
       (bool), "message"}.
    """
    bound = success_bound(label_dp_epsilon, dp_epsilon, dp_delta)
    lower = rate.interval[0]
    strict = (
        clopper_pearson(rate.successes, rate.trials, violation_level)[0]
        if rate.trials
        else math.nan
    )
    violation = not math.isnan(strict) and strict > bound + 1e-12
    eps_str = lambda e: None if e is None else ("inf" if math.isinf(e) else float(e))  # noqa: E731
    message = (
        f"{what}: lower confidence bound {lower:.4f} ({violation_level:g}: {strict:.4f}) is "
        f"within the bound {bound:.4f}"
        if not violation
        else (
            f"LABEL-DP VIOLATION: {what}'s {violation_level:g} lower confidence bound "
            f"{strict:.4f} exceeds the bound {bound:.4f} (label_dp_epsilon={label_dp_epsilon}, "
            f"dp_epsilon={dp_epsilon}); the privacy mechanism or its bookkeeping is broken."
        )
    )
    if violation:
        warnings.warn(message, LabelDPViolationWarning, stacklevel=2)
    return {
        "bound": bound,
        "lower": None if math.isnan(lower) else lower,
        "epsilon_hat": empirical_epsilon(lower),
        "epsilon_hat_dp": None if dp_epsilon is None else empirical_epsilon(lower, dp_delta),
        "label_dp_epsilon": eps_str(label_dp_epsilon),
        "dp_epsilon": eps_str(dp_epsilon),
        "violation_lower": None if math.isnan(strict) else strict,
        "violation": violation,
        "message": message,
    }


def auditor_epsilon(
    score: np.ndarray,
    label: np.ndarray,
    threshold: float,
    *,
    abstains: bool,
    delta: float = 0.0,
    significance: float = 1.0 - DEFAULT_LEVEL,
) -> float | None:
    """jax-privacy's Clopper–Pearson ε lower bound on the decision events of one BLIA rule.

    Args:
      score: [P] the rule's score of each IN canary pair (Δ, or Δ − t for a per-model
        threshold t).
      label: [P] the pairs' private 0/1 labels (label 1: the auditor's "IN" hypothesis).
      threshold: the rule's threshold on `score`.
      abstains: False (confidence rule): the events {score >= threshold} (guess 1) and
        {score < threshold} (guess 0), the auditor's two-sided bound at that threshold;
        True (margin rule, threshold δ >= 0): {score >= δ} (guess 1) and {score <= −δ}
        (guess 0), one one-sided bound each at significance / 2, the larger kept.
      delta: δ of the claim tested (0 for label-DP).
      significance: 1 − confidence.

    Returns:
      ε lower bound (0 when nothing is shown), or None if a label has no pair.
    """
    score, label = np.asarray(score, np.float64), np.asarray(label)
    ones, zeros = score[label == 1], score[label == 0]
    if ones.size == 0 or zeros.size == 0:
        return None
    at = auditing.Explicit(float(threshold))
    if not abstains:
        auditor = auditing.CanaryScoreAuditor(ones, zeros)
        return float(
            auditor.epsilon_clopper_pearson(significance, delta, False, threshold_strategy=at)
        )
    guess_one = auditing.CanaryScoreAuditor(ones, zeros)
    guess_zero = auditing.CanaryScoreAuditor(-zeros, -ones)
    return float(
        max(
            a.epsilon_clopper_pearson(significance / 2, delta, threshold_strategy=at)
            for a in (guess_one, guess_zero)
        )
    )


def _auditor_audit(
    score,
    label,
    threshold,
    abstains,
    audit_entry,
    *,
    label_dp_epsilon,
    dp_epsilon,
    dp_delta,
    level,
    violation_level,
    what,
) -> dict:
    """The auditor's figures for one rule, merged into its `audit` entry (and its flag)."""
    args = dict(abstains=abstains, significance=1.0 - level)
    out = {
        "epsilon_hat_auditor": auditor_epsilon(score, label, threshold, **args),
        "epsilon_hat_auditor_dp": (
            None
            if dp_epsilon is None
            else auditor_epsilon(score, label, threshold, delta=dp_delta, **args)
        ),
    }
    strict = dict(abstains=abstains, significance=1.0 - violation_level)
    claims = []
    if label_dp_epsilon is not None and not math.isinf(label_dp_epsilon):
        claims.append(("label_dp_epsilon", label_dp_epsilon, 0.0))
    if dp_epsilon is not None and not math.isinf(dp_epsilon):
        claims.append(("dp_epsilon", dp_epsilon, dp_delta))
    broken = []
    for name, eps, delta in claims:
        got = auditor_epsilon(score, label, threshold, delta=delta, **strict)
        if got is not None and got > eps + 1e-9:
            broken.append(f"{name}={eps:g} < {got:.4f}")
    out["auditor_violation"] = bool(broken)
    if broken:
        message = (
            f"LABEL-DP VIOLATION: jax-privacy's auditor on {what}'s scores gives a "
            f"{violation_level:g} lower bound above the claim ({'; '.join(broken)}); the "
            "privacy mechanism or its bookkeeping is broken."
        )
        warnings.warn(message, LabelDPViolationWarning, stacklevel=3)
        out["message"] = audit_entry["message"] + " | " + message
    out["violation"] = audit_entry["violation"] or bool(broken)
    return {**audit_entry, **out}


def evaluate(
    logits: np.ndarray,
    private_labels: np.ndarray,
    keep: np.ndarray,
    canary: np.ndarray,
    *,
    label_dp_epsilon: float | None = None,
    privacy: dict | None = None,
    threshold: float | str = 0.5,
    margin: float | None = None,
    curve_margins: Sequence[float] | None = None,
    query: int = 0,
    level: float = DEFAULT_LEVEL,
) -> dict:
    """Both attacks, the margin curve and the audit: one JSON-ready entry per store.

    Args:
      logits, private_labels, keep, canary: the store's arrays (see the module notes).
      label_dp_epsilon: ε of the store's randomized response (None/inf: off).
      privacy: the DP-SGD accountant's dict (`lira_jax.train.accounting.dp_sgd_privacy`),
        or None without DP-SGD.
      threshold: the confidence rule's τ or "calibrated".
      margin: the margin rule's δ (None: the label-free median, coverage 1/2).
      curve_margins: δ values of the curve (None: `DEFAULT_CURVE_COVERAGES`).
      query, level: as in `confidence_attack`.

    Returns:
      {"epsilon", "bound", "confidence": {"success", "interval", "num_pairs",
       "control_success", "control_interval", "control_num_pairs", "threshold"},
       "log_loss_margin": {"success", "interval", "coverage", "margin", "num_pairs",
       "control_success", "control_coverage"}, "margin_curve", "audit": {"confidence",
       "log_loss_margin"}, "violation", "privacy"}; each audit entry is `audit`'s dict plus
       "epsilon_hat_auditor" (`auditor_epsilon` at δ = 0), "epsilon_hat_auditor_dp" (at
       DP-SGD's δ; None without it) and "auditor_violation" (its `VIOLATION_LEVEL` bound
       above a claimed ε), folded into "violation".
    """
    dp_eps = None if privacy is None else float(privacy["epsilon"])
    dp_delta = 0.0 if privacy is None else float(privacy["delta"])
    conf = confidence_attack(
        logits, private_labels, keep, canary, threshold=threshold, query=query, level=level
    )
    marg = margin_attack(
        logits, private_labels, keep, canary, margin=margin, query=query, level=level
    )
    audits = {
        name: audit(
            result["in"],
            label_dp_epsilon=label_dp_epsilon,
            dp_epsilon=dp_eps,
            dp_delta=dp_delta,
            what=f"{name} BLIA",
        )
        for name, result in (("confidence", conf), ("log_loss_margin", marg))
    }
    # The same rules on jax-privacy's auditor: score Δ (minus the confidence rule's
    # per-model threshold), IN canary pairs, label 1 against label 0.
    d = label_margin(logits, query)
    labels, keep_b, canary_b = _check_arrays(d, private_labels, keep, canary)
    pairs = keep_b & canary_b[None]
    tau = np.broadcast_to(np.asarray(conf["threshold"], np.float64), (d.shape[0],))
    shifted = d - np.log(tau / (1.0 - tau))[:, None]
    rules = {
        "confidence": (shifted[pairs], 0.0, False),
        "log_loss_margin": (d[pairs], marg["margin"], True),
    }
    for name, (score, thr, abstains) in rules.items():
        audits[name] = _auditor_audit(
            score,
            labels[pairs],
            thr,
            abstains,
            audits[name],
            label_dp_epsilon=label_dp_epsilon,
            dp_epsilon=dp_eps,
            dp_delta=dp_delta,
            level=level,
            violation_level=VIOLATION_LEVEL,
            what=f"{name} BLIA",
        )
    eps = label_dp_epsilon
    c_in, c_out = conf["in"].to_dict(), conf["out"].to_dict()
    m_in, m_out = marg["in"].to_dict(), marg["out"].to_dict()
    return {
        "epsilon": "inf" if eps is None or math.isinf(eps) else float(eps),
        "bound": success_bound(label_dp_epsilon, dp_eps, dp_delta),
        "confidence": {
            "success": c_in["success"],
            "interval": c_in["interval"],
            "num_pairs": c_in["num_pairs"],
            "control_success": c_out["success"],
            "control_interval": c_out["interval"],
            "control_num_pairs": c_out["num_pairs"],
            "threshold": conf["threshold"],
        },
        "log_loss_margin": {
            "success": m_in["success"],
            "interval": m_in["interval"],
            "coverage": marg["coverage"],
            "margin": marg["margin"],
            "num_pairs": m_in["num_pairs"],
            "control_success": m_out["success"],
            "control_coverage": marg["out_coverage"],
        },
        "margin_curve": margin_curve(
            logits,
            private_labels,
            keep,
            canary,
            margins=curve_margins,
            query=query,
            level=level,
        ),
        "audit": audits,
        "violation": any(a["violation"] for a in audits.values()),
        "privacy": privacy,
    }

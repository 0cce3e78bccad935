"""Label memorization, influence and privacy scores from a store's keep mask and logits.

All estimators work on the store's arrays: `keep` [models, examples] bool, `logits`
[models, examples, queries, classes] and `labels` [examples]; query 0 is the identity
(un-augmented) query.

  * Label memorization (Feldman & Zhang 2020): mem(i) = Pr[h(x_i) = y_i | i ∈ S] −
    Pr[h(x_i) = y_i | i ∉ S], estimated from the models that trained on i (IN) and those
    that did not (OUT): mem = Σ_m C·K / Σ_m K − Σ_m C·¬K / Σ_m ¬K per example, with C the
    0/1 correctness of each model on the identity query. The soft version replaces C by
    p_y = softmax(logits)_y. Any keep mask works (F&Z use 70% subsets, LiRA 50%); only
    the number of IN and OUT models per example matters, and both must be >= 1.
  * Influence of training example i on test example j: the same estimator with the test
    correctness [models, tests] in place of C, for all pairs at once as two matmuls.
  * Per-target memorization (`target_memorization`): the same estimate from a target's
    leave-one-model-out shadow sets (`lira_jax.attacks.shadow_sets`: target excluded, IN
    and OUT counts independent of its membership), for grouping that target's examples
    without letting its own outputs choose the group. The other estimators use all
    models: they describe examples, not an attack on one model.
  * Privacy score (Carlini et al. 2022, §VII-B): |μ_in − μ_out| / (σ_in + σ_out) of the
    Gaussians fitted to φ (LiRA's logit-scaled confidence) over IN and OUT models.
  * Memorization with uncertainty (`memorization_interval`): from few models, the 0/1
    estimate is a difference of two binomial proportions; its interval is Newcombe's
    hybrid score interval, which keeps its coverage with 2–10 models per side where the
    normal (Wald) interval does not.

Design notes: everything runs on the host in float64 with numpy; there are no Python
loops over examples. The Gaussians are maximum-likelihood fits (mean and ddof=0 std),
the same σ as `lira_jax.attacks.lira`, but centred on the mean rather than LiRA's
median: the mean is what the closed-form Hellinger distance in
`lira_jax.sample_complexity` assumes, and for Gaussian φ the two agree up to sampling
noise. φ is taken either on the identity query or averaged over all queries per model
(`queries="mean"`, less noisy, and what LiRA's multi-query test effectively sees).
With a single IN or OUT model σ is 0; the privacy score is then |Δ|/0 = inf (0 if
Δ = 0 too) rather than NaN, so an example is never silently dropped from a ranking.
Examples with no IN or no OUT model are an error naming how many there are and how to
fix it: the estimators are undefined for them, and a NaN in a table is easy to miss.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np
import scipy.special
import scipy.stats

from lira_jax import signals
from lira_jax.attacks import shadow_sets

__all__ = [
    "DEFAULT_BUCKET_THRESHOLDS",
    "GaussianFits",
    "MemorizationInterval",
    "MemorizationSignals",
    "bucket_names",
    "bucketize",
    "check_coverage",
    "fit_gaussians",
    "format_csv",
    "influence",
    "memorization",
    "memorization_interval",
    "memorization_signals",
    "per_example_table",
    "privacy_score",
    "select_singletons",
    "target_memorization",
]

DEFAULT_BUCKET_THRESHOLDS: tuple[float, ...] = (0.1, 0.5)
"""Bucket edges on memorization: [<0.1, 0.1–0.5, >=0.5] (the issue's default)."""

Queries = Literal["identity", "mean"]


class MemorizationSignals(NamedTuple):
    """Per-model signals the estimators need, from `memorization_signals`.

    Attributes:
      correct: [models, examples] bool, argmax of the logits on the chosen query == label.
      p_true: [models, examples] float64, p_y on the chosen query (soft correctness).
      phi: [models, examples, queries] float64, LiRA's φ on every query.
    """

    correct: np.ndarray
    p_true: np.ndarray
    phi: np.ndarray


class GaussianFits(NamedTuple):
    """Per-example Gaussians fitted to φ over IN and over OUT models (each [examples])."""

    mu_in: np.ndarray
    sigma_in: np.ndarray
    mu_out: np.ndarray
    sigma_out: np.ndarray
    num_in: np.ndarray
    num_out: np.ndarray


def _as_keep(keep: np.ndarray) -> np.ndarray:
    keep = np.asarray(keep)
    if keep.ndim != 2:
        raise ValueError(f"keep must be [models, examples], got shape {keep.shape}.")
    if keep.dtype != bool:
        if not np.isin(keep, (0, 1)).all():
            raise ValueError(f"keep must be boolean (or 0/1), got dtype {keep.dtype}.")
        keep = keep.astype(bool)
    return keep


def _as_values(values: np.ndarray, num_models: int, name: str) -> np.ndarray:
    """Validates a [models, X] array of finite per-model values; returns float64."""
    values = np.asarray(values)
    if values.ndim != 2 or values.shape[0] != num_models:
        raise ValueError(
            f"{name} must be [models, ...] with models={num_models} (the rows of keep), got "
            f"shape {values.shape}."
        )
    values = values.astype(np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        models = np.unique(np.nonzero(bad)[0])
        raise ValueError(
            f"{name} has {int(bad.sum())} NaN/inf value(s), in model(s) {models[:10].tolist()}: "
            "those models diverged or their logits were not written. Retrain them or drop "
            "their rows from every array."
        )
    return values


def check_coverage(keep: np.ndarray, *, min_in: int = 1, min_out: int = 1) -> None:
    """Raises if some example has fewer than `min_in` IN or `min_out` OUT models.

    Args:
      keep: [models, examples] bool.
      min_in: required number of models that trained on each example.
      min_out: required number of models that did not.

    Raises:
      ValueError: naming how many examples (and the first few indices) fall short.
    """
    keep = _as_keep(keep)
    num_models = keep.shape[0]
    num_in = keep.sum(axis=0)
    for which, counts, need in (("IN", num_in, min_in), ("OUT", num_models - num_in, min_out)):
        short = np.flatnonzero(counts < need)
        if short.size:
            raise ValueError(
                f"{short.size} of {keep.shape[1]} examples (e.g. indices "
                f"{short[:10].tolist()}) have fewer than {need} {which} model(s) among the "
                f"{num_models} models, so IN-vs-OUT statistics are undefined for them. Train "
                "more models, use a pkeep nearer 0.5 (a balanced mask gives every example "
                "exactly int(pkeep*M) IN models), or restrict the analysis to covered "
                "examples, e.g. keep[:, covered] with covered = (keep.sum(0) >= 1) & "
                "((~keep).sum(0) >= 1)."
            )


def memorization(keep: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """Subsampled label-memorization estimate of every example.

    mem[n] = Σ_m correct[m,n]·keep[m,n] / Σ_m keep[m,n]
             − Σ_m correct[m,n]·¬keep[m,n] / Σ_m ¬keep[m,n].

    Args:
      keep: [models, examples] bool, model m trained on example n.
      correct: [models, examples] 0/1 (or bool) correctness on the identity query for
        Feldman & Zhang's memorization, or p_y in [0, 1] for the soft version.

    Returns:
      [examples] float64 in [−1, 1].

    Raises:
      ValueError: on shape mismatches, NaN/inf, or examples with no IN or no OUT model.
    """
    keep = _as_keep(keep)
    correct = _as_values(correct, keep.shape[0], "correct")
    if correct.shape != keep.shape:
        raise ValueError(f"correct.shape={correct.shape} must equal keep.shape={keep.shape}.")
    check_coverage(keep)
    k = keep.astype(np.float64)
    num_in = k.sum(axis=0)
    num_out = keep.shape[0] - num_in
    sum_in = (k * correct).sum(axis=0)
    return sum_in / num_in - (correct.sum(axis=0) - sum_in) / num_out


class MemorizationInterval(NamedTuple):
    """Memorization of every example with a confidence interval (`memorization_interval`).

    Attributes:
      mem: [examples] the estimate of `memorization` (IN accuracy − OUT accuracy).
      lo, hi: [examples] the interval's ends, within [−1, 1].
      num_in, num_out: [examples] int64 models per side behind each estimate.
      level: the interval's confidence level.
    """

    mem: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    num_in: np.ndarray
    num_out: np.ndarray
    level: float


def _wilson(successes: np.ndarray, trials: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval (lo, hi) of successes / trials, elementwise (trials >= 1)."""
    p = successes / trials
    z2 = z * z
    center = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = z * np.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / (1 + z2 / trials)
    return np.clip(center - half, 0.0, 1.0), np.clip(center + half, 0.0, 1.0)


def memorization_interval(
    keep: np.ndarray, correct: np.ndarray, *, level: float = 0.95
) -> MemorizationInterval:
    """Feldman–Zhang memorization of every example with Newcombe's hybrid score interval.

    With p_in = x_in / n_in the accuracy of the n_in IN models on the example, p_out that
    of the n_out OUT models, and (l, u) each proportion's Wilson score interval at `level`
    (z = Φ⁻¹((1 + level)/2)), the interval of mem = p_in − p_out is (Newcombe 1998,
    method 10)

        lo = mem − √((p_in − l_in)² + (u_out − p_out)²),
        hi = mem + √((u_in − p_in)² + (p_out − l_out)²).

    It is meant for few models: e.g. 4 IN and 4 OUT models that all agree give mem = 1
    with lo ≈ 0.31, so a ranking by `lo` prefers examples whose memorization rests on
    more models. Correctness must be 0/1 (binomial); the soft version has no such interval.

    Args:
      keep: [models, examples] bool.
      correct: [models, examples] 0/1 (or bool) correctness on the identity query.
      level: confidence level in (0, 1).

    Returns:
      `MemorizationInterval` (each field [examples]).

    Raises:
      ValueError: on shape mismatches, non-0/1 correctness, a level outside (0, 1), or
        examples with no IN or no OUT model.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"{level=} must lie in (0, 1), e.g. 0.95.")
    keep = _as_keep(keep)
    correct = _as_values(correct, keep.shape[0], "correct")
    if correct.shape != keep.shape:
        raise ValueError(f"correct.shape={correct.shape} must equal keep.shape={keep.shape}.")
    if not np.isin(correct, (0.0, 1.0)).all():
        raise ValueError(
            "memorization_interval needs 0/1 correctness (a binomial count per side); got "
            "values other than 0 and 1 (soft p_y?). Pass MemorizationSignals.correct."
        )
    check_coverage(keep)
    num_in = keep.sum(axis=0)
    num_out = keep.shape[0] - num_in
    x_in = (correct * keep).sum(axis=0)
    x_out = correct.sum(axis=0) - x_in
    p_in, p_out = x_in / num_in, x_out / num_out
    z = float(scipy.stats.norm.ppf(0.5 * (1.0 + level)))
    l_in, u_in = _wilson(x_in, num_in, z)
    l_out, u_out = _wilson(x_out, num_out, z)
    mem = p_in - p_out
    lo = mem - np.sqrt((p_in - l_in) ** 2 + (u_out - p_out) ** 2)
    hi = mem + np.sqrt((u_in - p_in) ** 2 + (p_out - l_out) ** 2)
    return MemorizationInterval(
        mem,
        np.clip(lo, -1.0, 1.0),
        np.clip(hi, -1.0, 1.0),
        num_in.astype(np.int64),
        num_out.astype(np.int64),
        float(level),
    )


def target_memorization(
    keep: np.ndarray, correct: np.ndarray, targets: np.ndarray, *, seed: int = 0
) -> np.ndarray:
    """Memorization of every example as estimated by each target's shadow models only.

    For grouping a target's examples by memorization (per-bucket attack results, sample
    complexity), an estimate that includes the target's own correctness leaks its
    membership into the group: on stores without any membership signal, LiRA's AUC on the
    examples it placed at mem >= 0.5 was 0.71 at M = 16. Here target t's estimate uses the
    shadow sets of the attacks (`lira_jax.attacks.shadow_sets.target_shadow_mask`: t
    excluded, and IN/OUT counts that do not depend on t's membership).

    Args:
      keep: [models, examples] bool.
      correct: [models, examples] 0/1 correctness (or p_y for the soft version).
      targets: [T] target model indices.
      seed: seed of the shadow sets (the attacks' seed).

    Returns:
      [T, examples] float64 in [−1, 1].

    Raises:
      ValueError: on shape mismatches, NaN/inf, bad targets, or examples with no IN or no
        OUT shadow for some target.
    """
    keep = _as_keep(keep)
    correct = _as_values(correct, keep.shape[0], "correct")
    if correct.shape != keep.shape:
        raise ValueError(f"correct.shape={correct.shape} must equal keep.shape={keep.shape}.")
    targets = np.asarray(targets, dtype=np.int64).reshape(-1)
    if targets.size == 0 or targets.min() < 0 or targets.max() >= keep.shape[0]:
        raise ValueError(f"targets must be model indices in [0, {keep.shape[0]}), got {targets}.")
    sum_in, count_in, sum_out, count_out = shadow_sets.shadow_group_sums(
        correct, keep, targets, seed
    )
    for which, count in (("IN", count_in), ("OUT", count_out)):
        if np.any(count == 0):
            t = int(targets[np.argmax((count == 0).any(axis=1))])
            raise ValueError(
                f"Some examples have no {which} shadow model when model {t} is the target "
                f"({keep.shape[0]} models, IN counts {keep.sum(0).min()}..{keep.sum(0).max()}); "
                "train more models or use a pkeep nearer 0.5."
            )
    return sum_in / count_in - sum_out / count_out


def influence(keep: np.ndarray, test_correct: np.ndarray) -> np.ndarray:
    """Influence of every training example on every test example (Feldman & Zhang).

    infl[i, j] = mean of test_correct[:, j] over models with i IN − over models with i OUT.

    Memory is examples × tests float64; for large sets call it on column blocks of keep
    (keep[:, a:b]), which gives rows a:b of the full result.

    Args:
      keep: [models, examples] bool.
      test_correct: [models, tests] 0/1 correctness (or p_y) of each model on the test set,
        e.g. `signals.correctness(test_logits[:, :, 0], test_labels, example_axis=1)`.

    Returns:
      [examples, tests] float64.

    Raises:
      ValueError: on shape mismatches, NaN/inf, or examples with no IN or no OUT model.
    """
    keep = _as_keep(keep)
    test_correct = _as_values(test_correct, keep.shape[0], "test_correct")
    check_coverage(keep)
    k = keep.astype(np.float64)
    num_in = k.sum(axis=0)
    num_out = keep.shape[0] - num_in
    sum_in = k.T @ test_correct  # [examples, tests]
    sum_out = test_correct.sum(axis=0)[None, :] - sum_in  # (1 − K)ᵀ V without a 2nd matmul
    return sum_in / num_in[:, None] - sum_out / num_out[:, None]


def memorization_signals(
    logits: np.ndarray, labels: np.ndarray, *, query: int = 0
) -> MemorizationSignals:
    """Correctness, p_y (on one query) and φ (on all queries) from a store's logits.

    Args:
      logits: [models, examples, queries, classes].
      labels: [examples] int.
      query: which query gives correctness and p_y (0 = identity).

    Returns:
      `MemorizationSignals` (correct [M, N], p_true [M, N], phi [M, N, A]).

    Raises:
      ValueError: on bad shapes, bad labels, an out-of-range query, or NaN/inf logits.
    """
    logits = np.asarray(logits)
    if logits.ndim != 4:
        raise ValueError(
            f"logits must be [models, examples, queries, classes], got shape {logits.shape}."
        )
    if not -logits.shape[2] <= query < logits.shape[2]:
        raise ValueError(f"{query=} is out of range for {logits.shape[2]} queries.")
    finite = np.isfinite(logits)
    if not finite.all():
        models = np.unique(np.nonzero(~finite)[0])
        raise ValueError(
            f"logits contain NaN/inf for model(s) {models[:10].tolist()}: those models "
            "diverged. Retrain them (e.g. with a lower learning rate) or drop their rows."
        )
    phi = signals.logit_scaled_confidence(logits, labels, example_axis=1)
    correct = signals.correctness(logits[:, :, query], labels, example_axis=1)
    # p_y = sigmoid(φ) exactly, since φ = log p_y − log(1 − p_y).
    return MemorizationSignals(correct, scipy.special.expit(phi[:, :, query]), phi)


def _per_model_phi(phi: np.ndarray, num_models: int, queries: Queries) -> np.ndarray:
    """φ [M, N] or [M, N, A] → [M, N]: identity query (index 0) or mean over queries."""
    phi = np.asarray(phi, dtype=np.float64)
    if phi.ndim == 3:
        if queries == "identity":
            phi = phi[:, :, 0]
        elif queries == "mean":
            phi = phi.mean(axis=2)
        else:
            raise ValueError(f"{queries=} must be 'identity' (query 0) or 'mean' (all queries).")
    return _as_values(phi, num_models, "phi")


def fit_gaussians(
    phi: np.ndarray, keep: np.ndarray, *, queries: Queries = "identity"
) -> GaussianFits:
    """Maximum-likelihood Gaussians of φ over each example's IN and OUT models.

    Args:
      phi: [models, examples, queries] (or [models, examples]) LiRA φ.
      keep: [models, examples] bool.
      queries: "identity" uses query 0; "mean" averages φ over queries per model first.

    Returns:
      `GaussianFits` with mean, ddof=0 std and counts, each [examples].

    Raises:
      ValueError: on shape mismatches, NaN/inf, or examples with no IN or no OUT model.
    """
    keep = _as_keep(keep)
    phi = _per_model_phi(phi, keep.shape[0], queries)
    if phi.shape != keep.shape:
        raise ValueError(
            f"phi.shape[:2]={phi.shape} must equal keep.shape={keep.shape} ([models, examples])."
        )
    check_coverage(keep)
    stats = []
    for mask in (keep, ~keep):
        w = mask.astype(np.float64)
        count = w.sum(axis=0)
        mean = (w * phi).sum(axis=0) / count
        std = np.sqrt((w * (phi - mean) ** 2).sum(axis=0) / count)
        stats.append((mean, std, count.astype(np.int64)))
    (mu_in, sd_in, n_in), (mu_out, sd_out, n_out) = stats
    return GaussianFits(mu_in, sd_in, mu_out, sd_out, n_in, n_out)


def _privacy_from_fits(fits: GaussianFits) -> np.ndarray:
    gap = np.abs(fits.mu_in - fits.mu_out)
    spread = fits.sigma_in + fits.sigma_out
    with np.errstate(divide="ignore", invalid="ignore"):
        score = gap / spread
    # σ_in = σ_out = 0 (a single IN and OUT model, or identical φ): inf, or 0 if no gap.
    return np.where(spread > 0, score, np.where(gap > 0, np.inf, 0.0))


def privacy_score(
    phi: np.ndarray, keep: np.ndarray, *, queries: Queries = "identity"
) -> np.ndarray:
    """Per-example privacy score |μ_in − μ_out| / (σ_in + σ_out) on φ.

    Args:
      phi: [models, examples, queries] (or [models, examples]) LiRA φ.
      keep: [models, examples] bool.
      queries: "identity" (query 0) or "mean" (φ averaged over queries per model).

    Returns:
      [examples] float64 >= 0; inf where both σ are 0 but the means differ.

    Raises:
      ValueError: on shape mismatches, NaN/inf, or examples with no IN or no OUT model.
    """
    return _privacy_from_fits(fit_gaussians(phi, keep, queries=queries))


def _validate_thresholds(thresholds: Sequence[float]) -> np.ndarray:
    edges = np.asarray(thresholds, dtype=np.float64)
    if edges.ndim != 1 or edges.size == 0 or not np.all(np.isfinite(edges)):
        raise ValueError(f"thresholds={thresholds!r} must be a non-empty list of finite numbers.")
    if np.any(np.diff(edges) <= 0):
        raise ValueError(f"thresholds={thresholds!r} must be strictly increasing.")
    return edges


def bucketize(
    mem: np.ndarray, thresholds: Sequence[float] = DEFAULT_BUCKET_THRESHOLDS
) -> np.ndarray:
    """Memorization bucket of every example: i such that edge[i−1] <= mem < edge[i].

    Args:
      mem: [examples] memorization scores.
      thresholds: strictly increasing edges; len(thresholds) + 1 buckets.

    Returns:
      [examples] int64 in [0, len(thresholds)], named by `bucket_names(thresholds)`.

    Raises:
      ValueError: on NaN scores or bad thresholds.
    """
    edges = _validate_thresholds(thresholds)
    mem = np.asarray(mem, dtype=np.float64)
    if np.isnan(mem).any():
        raise ValueError(f"mem has {int(np.isnan(mem).sum())} NaN value(s); cannot bucket them.")
    return np.searchsorted(edges, mem, side="right").astype(np.int64)


def bucket_names(thresholds: Sequence[float] = DEFAULT_BUCKET_THRESHOLDS) -> list[str]:
    """Human-readable names of the buckets of `bucketize`, e.g. ["mem<0.1", ...]."""
    edges = [f"{t:g}" for t in _validate_thresholds(thresholds)]
    middle = [f"{lo}<=mem<{hi}" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    return [f"mem<{edges[0]}", *middle, f"mem>={edges[-1]}"]


def select_singletons(mem: np.ndarray, threshold: float) -> dict:
    """Selects highly memorized examples ("singletons"): mem >= threshold.

    The seed paper uses 0.4 (MNIST) and 0.8 (CIFAR-10); Feldman & Zhang call >= 0.25 high.

    Args:
      mem: [examples] memorization scores.
      threshold: selection threshold.

    Returns:
      JSON-serialisable dict: {"threshold", "num_selected", "num_examples", "fraction",
      "indices": list of int, sorted by decreasing memorization (ties by index)}.

    Raises:
      ValueError: on NaN scores or a non-finite threshold.
    """
    mem = np.asarray(mem, dtype=np.float64)
    if mem.ndim != 1:
        raise ValueError(f"mem must be [examples], got shape {mem.shape}.")
    if np.isnan(mem).any():
        raise ValueError(f"mem has {int(np.isnan(mem).sum())} NaN value(s).")
    if not np.isfinite(threshold):
        raise ValueError(f"{threshold=} must be finite.")
    selected = np.flatnonzero(mem >= threshold)
    selected = selected[np.argsort(-mem[selected], kind="stable")]
    return {
        "threshold": float(threshold),
        "num_selected": int(selected.size),
        "num_examples": int(mem.size),
        "fraction": float(selected.size / mem.size) if mem.size else 0.0,
        "indices": selected.tolist(),
    }


def per_example_table(
    keep: np.ndarray,
    labels: np.ndarray,
    sig: MemorizationSignals,
    *,
    queries: Queries = "identity",
    thresholds: Sequence[float] = DEFAULT_BUCKET_THRESHOLDS,
    groups: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The per-example memorization table, one array per column (same length N).

    Columns, in order: index, label, memorization, soft_memorization, privacy_score,
    bucket (int, see `bucket_names(thresholds)`), [group (only if `groups` is given)],
    num_in, num_out.

    Args:
      keep: [models, examples] bool.
      labels: [examples] int.
      sig: `memorization_signals(logits, labels)` of the same models and examples.
      queries: φ used for the privacy score: "identity" (query 0) or "mean".
      thresholds: memorization bucket edges.
      groups: optional [examples] int, e.g. the store's `groups`.

    Returns:
      dict column name -> [examples] array; `format_csv` turns it into CSV text.

    Raises:
      ValueError: on shape mismatches, NaN, or examples with no IN or no OUT model.
    """
    keep = _as_keep(keep)
    labels = np.asarray(labels)
    num_examples = keep.shape[1]
    if labels.shape != (num_examples,):
        raise ValueError(f"labels.shape={labels.shape} must be [examples]=({num_examples},).")
    mem = memorization(keep, sig.correct)
    fits = fit_gaussians(sig.phi, keep, queries=queries)
    table = {
        "index": np.arange(num_examples),
        "label": labels,
        "memorization": mem,
        "soft_memorization": memorization(keep, sig.p_true),
        "privacy_score": _privacy_from_fits(fits),
        "bucket": bucketize(mem, thresholds),
    }
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != (num_examples,):
            raise ValueError(f"groups.shape={groups.shape} must be [examples]=({num_examples},).")
        table["group"] = groups
    table["num_in"] = fits.num_in
    table["num_out"] = fits.num_out
    return table


def format_csv(table: dict[str, np.ndarray], *, float_format: str = "{:.9g}") -> str:
    """Formats a dict of equal-length columns as CSV text (header line + one line per row).

    Floats use `float_format` (inf/nan print as "inf"/"nan"); other values use str().
    Values must not contain commas or newlines (numbers and simple names are fine).

    Args:
      table: column name -> [rows] array, e.g. from `per_example_table`.
      float_format: format string for floating-point values.

    Returns:
      The CSV text, ending in a newline.

    Raises:
      ValueError: if the table is empty or the columns differ in length.
    """
    if not table:
        raise ValueError("table has no columns.")
    columns = {name: np.asarray(col) for name, col in table.items()}
    lengths = {name: col.shape for name, col in columns.items()}
    if any(col.ndim != 1 for col in columns.values()) or len(set(lengths.values())) != 1:
        raise ValueError(f"Columns must be 1-D and of equal length, got shapes {lengths}.")
    texts = []
    for col in columns.values():
        if np.issubdtype(col.dtype, np.floating):
            texts.append([float_format.format(v) for v in col.tolist()])
        else:
            texts.append([str(v) for v in col.tolist()])
    lines = [",".join(columns)] + [",".join(row) for row in zip(*texts, strict=True)]
    return "\n".join(lines) + "\n"

"""Likelihood Ratio Attack (LiRA; Carlini et al., 2022) and the global-threshold baseline.

Design notes: one implementation covers the four LiRA variants of the reference code
(online/offline × per-example/fixed variance) through two keyword arguments. Inputs are
the logit-scaled confidences φ (see `lira_jax.signals`) of one target model and of S
shadow models on N examples under A queries (augmentations). For every example and query
we fit a Gaussian to the shadow φ of the models that trained on the example (IN) and of
those that did not (OUT): μ = median, σ = standard deviation (ddof=0), as in the
reference. Masked statistics are computed without a Python loop over examples: the
median from a sort along the shadow axis with the excluded entries pushed to the end,
the standard deviation from masked sums.

  * fix_variance=True replaces the per-example σ by one global σ_in (resp. σ_out): the
    std of all IN (resp. OUT) values pooled over shadows, examples and queries, which is
    what the reference's `np.std(dat_in)` computes. (The reference's online variant also
    uses the IN pool for σ_out; we use the OUT pool for σ_out, as the paper describes.)
  * online: score = mean over queries of log N(φ; μ_in, σ_in) − log N(φ; μ_out, σ_out).
  * offline: the paper's one-sided test against the OUT Gaussian. Per query the p-value
    of "φ is no larger than an OUT model's" is P[Z > φ], Z ~ N(μ_out, σ_out); the score is
    the mean over queries of −log P[Z > φ] (Fisher's combination of the per-query
    p-values). With one query this ranks examples exactly like the paper's
    Λ = 1 − P[Z > φ] = Φ((φ − μ_out)/σ_out); we use −log sf rather than log cdf because
    log cdf rounds to 0 for φ more than ~38σ above μ_out, which would merge the most
    confident members into one tie exactly where low-FPR thresholds live. (The
    reference's offline code uses the two-sided −log N(φ; μ_out, σ_out) instead.)
  * 1e-30 is added to every σ so that an example whose shadows agree exactly (or that
    has a single IN model) gives a finite, very confident score rather than NaN.

Examples that no shadow model trained on (online) or that every shadow model trained on
are an error, not a NaN score: more shadow models or a pkeep nearer 0.5 fixes them.
"""

from __future__ import annotations

import numpy as np
import scipy.stats

__all__ = ["global_threshold_scores", "lira_scores"]

_SIGMA_EPS = 1e-30


def _masked_median(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Median over axis 0 of the entries where mask is True.

    Args:
      values: [S, N, A] float64.
      mask: [S, N, 1] bool (broadcast over queries), at least one True per column.

    Returns:
      [N, A] medians (mean of the two middle values for an even count).
    """
    # np.sort puts NaN last, so the k selected values occupy rows 0..k-1 after sorting.
    ordered = np.sort(np.where(mask, values, np.nan), axis=0)
    count = np.broadcast_to(mask.sum(axis=0), ordered.shape[1:])
    lo = np.take_along_axis(ordered, ((count - 1) // 2)[None], axis=0)[0]
    hi = np.take_along_axis(ordered, (count // 2)[None], axis=0)[0]
    return (lo + hi) / 2.0


def _masked_std(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Population std (ddof=0) over axis 0 of the entries where mask is True -> [N, A]."""
    weight = mask.astype(np.float64)
    count = weight.sum(axis=0)
    mean = (weight * values).sum(axis=0) / count
    return np.sqrt((weight * (values - mean) ** 2).sum(axis=0) / count)


def _check_coverage(counts: np.ndarray, which: str) -> None:
    missing = int(np.sum(counts == 0))
    if missing:
        raise ValueError(
            f"{missing} of {counts.size} examples have no {which} shadow model, so LiRA cannot "
            f"fit their {which} distribution. Train more shadow models, or use a pkeep nearer "
            "0.5 (a balanced keep mask puts every example IN exactly pkeep*M models)."
        )


def lira_scores(
    target_phi: np.ndarray,
    shadow_phi: np.ndarray,
    shadow_keep: np.ndarray,
    *,
    online: bool = True,
    fix_variance: bool = False,
) -> np.ndarray:
    """LiRA membership scores of one target model.

    Args:
      target_phi: [N, A] φ of the target model on N examples under A queries.
      shadow_phi: [S, N, A] φ of S shadow models on the same examples and queries.
      shadow_keep: [S, N] bool, whether shadow s trained on example n.
      online: use both IN and OUT Gaussians (likelihood ratio); otherwise the one-sided
        test against the OUT Gaussian only.
      fix_variance: one global σ per distribution instead of a per-example σ.

    Returns:
      [N] float64 scores, higher = more likely a member of the target's training set.

    Raises:
      ValueError: on inconsistent shapes, NaN inputs, or examples with no OUT shadow
        (or, online, no IN shadow).
    """
    target_phi = np.asarray(target_phi, dtype=np.float64)
    shadow_phi = np.asarray(shadow_phi, dtype=np.float64)
    keep = np.asarray(shadow_keep, dtype=bool)
    if shadow_phi.ndim != 3 or target_phi.shape != shadow_phi.shape[1:]:
        raise ValueError(
            f"Expected target_phi [N, A] and shadow_phi [S, N, A], got {target_phi.shape=} "
            f"and {shadow_phi.shape=}."
        )
    if keep.shape != shadow_phi.shape[:2]:
        raise ValueError(f"shadow_keep.shape={keep.shape} must be [S, N]={shadow_phi.shape[:2]}.")
    if np.isnan(target_phi).any() or np.isnan(shadow_phi).any():
        raise ValueError("target_phi / shadow_phi contain NaN; check the stored logits.")

    keep_in = keep[:, :, None]
    keep_out = ~keep_in
    _check_coverage((~keep).sum(axis=0), "OUT")
    mu_out = _masked_median(shadow_phi, keep_out)
    sigma_out = np.std(shadow_phi[~keep]) if fix_variance else _masked_std(shadow_phi, keep_out)
    sigma_out = sigma_out + _SIGMA_EPS

    if not online:
        per_query = -scipy.stats.norm.logsf(target_phi, mu_out, sigma_out)
        return per_query.mean(axis=-1)

    _check_coverage(keep.sum(axis=0), "IN")
    mu_in = _masked_median(shadow_phi, keep_in)
    sigma_in = np.std(shadow_phi[keep]) if fix_variance else _masked_std(shadow_phi, keep_in)
    sigma_in = sigma_in + _SIGMA_EPS
    per_query = scipy.stats.norm.logpdf(target_phi, mu_in, sigma_in) - scipy.stats.norm.logpdf(
        target_phi, mu_out, sigma_out
    )
    return per_query.mean(axis=-1)


def global_threshold_scores(target_phi: np.ndarray) -> np.ndarray:
    """Global-threshold baseline: the target's φ averaged over queries.

    Args:
      target_phi: [N, A] φ of the target model.

    Returns:
      [N] float64 scores, higher = more likely a member.
    """
    target_phi = np.asarray(target_phi, dtype=np.float64)
    if target_phi.ndim != 2:
        raise ValueError(f"target_phi must be [N, A], got shape {target_phi.shape}.")
    return target_phi.mean(axis=-1)

"""How many shadow models an attack needs, per memorization bucket ("Why Train More?").

The main entry point, `shadow_model_curves`, measures LiRA's success (AUC and TPR at low
FPR; online/offline × per-example/fixed variance) as a function of k, the number of
shadow models per distribution: for every example the attack sees k models that trained
on it (IN) and k that did not (OUT); the online test uses those 2k models, the offline
test only the k OUT ones. Evaluation follows the LiRA protocol: each of the first
`num_targets` models is in turn the target, its shadows are drawn from the other M − 1
models, and scores are pooled over targets before computing the ROC. The curves can be
split by group (e.g. `memorization.bucketize`): the pooled scores are restricted to the
examples of the group. The other tools compare the measured curves with theory: the
closed-form Hellinger distance between each example's fitted IN and OUT Gaussians and
the Θ(1/H²) estimate of the shadow models needed, the first k at which a group's curve
reaches a target AUC, and the Spearman correlation of memorization with privacy score.

From few models (a pilot), `shadow_models_needed` predicts each example's shadow models per
side with an interval, under the model of the fixed-variance attack (one within-example σ
per side, pooled over examples, and a bias-corrected gap); `models_needed_by_subsampling`
measures the same quantity on a store, as the first k whose curve reaches a fixed fraction
of the attack's all-models advantage.

Design notes: selecting k IN and k OUT models per example. For one draw we sample
U ~ Uniform[M, N] once; for example n, its IN models sorted by U[:, n] form a uniformly
random ordering of them (likewise OUT), and "the first k of that ordering" is a uniformly
random k-subset. Leave-one-model-out comes for free: for target t the same ordering
with t deleted is a uniformly random ordering of the other models, so one argsort per
draw serves every target (their selections are correlated within a draw, but each is
exactly uniform, and draws are independent). The subsets are nested in k, so within a
draw the curve changes only because models are added (common random numbers: less
noise between neighbouring k than independent subsets would give). Every example gets
exactly k models per side, which a random subset of 2k models would only give on
average; the price is that k is limited by the example with the fewest IN (or OUT)
shadows: k <= min over targets and examples, see `max_models_per_side` (M/2 − 1 for a
balanced pkeep=0.5 mask, 0.3·M − 1 for pkeep=0.7). The selected φ are gathered into
compact [k, N, A] arrays, so each k costs a sort of k rows, not of M.

The scores use LiRA's exact formulas (μ = median, σ = ddof-0 std + 1e-30, online
log-likelihood ratio, offline −log P[Z > φ]; fixed variance: one σ from all selected
values pooled), so when every example has exactly k IN and k OUT shadows besides the
target, the curve at that k equals `lira_jax.attacks.lira_scores` on those shadows. With
k = 1 the per-example σ is 0 and only the fixed-variance variants are meaningful.
Intervals are percentiles over the independent draws (seeded by (seed, draw)): with D
draws, an interval of 0.9 means the 5th–95th percentiles; use >= 20 draws for stable
intervals.

Shadow sets: every curve point gives every (target, example) exactly k IN and k OUT
shadows, so the sizes never depend on the target's membership. The "all shadows"
reference uses the shadow sets of the leave-one-model-out attacks
(`lira_jax.attacks.shadow_sets.target_shadow_mask`, seeded by `seed`: for a balanced mask
count_in − 1 IN and count_out − 1 OUT per example); before, it used all M − 1 other
models, whose IN/OUT counts differ by one between members and non-members (a bias of
the size the curves measure at M <= 16).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import scipy.stats

from lira_jax import metrics
from lira_jax.attacks import shadow_sets
from lira_jax.attacks.lira import lira_scores
from lira_jax.memorization import Queries, check_coverage, fit_gaussians

__all__ = [
    "ATTACK_VARIANTS",
    "compare_with_hellinger",
    "default_ks",
    "first_k_reaching",
    "hellinger_squared",
    "ModelsNeeded",
    "max_models_per_side",
    "memorization_privacy_spearman",
    "models_needed_by_subsampling",
    "per_example_hellinger_squared",
    "shadow_model_curves",
    "shadow_models_estimate",
    "shadow_models_needed",
    "to_jsonable",
]

ATTACK_VARIANTS: dict[str, tuple[bool, bool]] = {
    "lira_online": (True, False),
    "lira_online_fixed_variance": (True, True),
    "lira_offline": (False, False),
    "lira_offline_fixed_variance": (False, True),
}
"""Attack name (as in `lira_jax.attacks.ATTACKS`) -> (online, fix_variance)."""

_SIGMA_EPS = 1e-30  # as in lira_jax.attacks.lira
_ALL = "all"


def to_jsonable(obj):
    """Converts numpy scalars/arrays (nested in dicts/lists) to Python; NaN/inf -> None."""
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.bool_ | bool):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating | float):
        return float(obj) if np.isfinite(obj) else None
    return obj


def _validate(phi: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    phi = np.asarray(phi, dtype=np.float64)
    keep = np.asarray(keep)
    if phi.ndim == 2:
        phi = phi[:, :, None]
    if phi.ndim != 3:
        raise ValueError(f"phi must be [models, examples, queries], got shape {phi.shape}.")
    if keep.dtype != bool or keep.shape != phi.shape[:2]:
        raise ValueError(
            f"keep must be a bool array of shape [models, examples]={phi.shape[:2]}, got "
            f"{keep.dtype} {keep.shape}."
        )
    bad = ~np.isfinite(phi)
    if bad.any():
        models = np.unique(np.nonzero(bad)[0])
        raise ValueError(
            f"phi has {int(bad.sum())} NaN/inf value(s) in model(s) {models[:10].tolist()}; "
            "retrain those models or drop their rows."
        )
    return phi, keep


def _resolve_targets(num_targets: int | None, num_models: int) -> int:
    if num_targets is None:
        num_targets = min(8, num_models)
    if not 1 <= num_targets <= num_models:
        raise ValueError(f"{num_targets=} must be between 1 and the number of models {num_models}.")
    return int(num_targets)


def max_models_per_side(keep: np.ndarray, num_targets: int | None = None) -> int:
    """Largest k such that every example has k IN and k OUT shadows for every target.

    Args:
      keep: [models, examples] bool.
      num_targets: models 0 .. num_targets−1 serve as targets (default min(8, M)).

    Returns:
      k_max >= 0 (0 means some example has no IN or no OUT shadow for some target).
    """
    keep = np.asarray(keep, dtype=bool)
    if keep.ndim != 2:
        raise ValueError(f"keep must be [models, examples], got shape {keep.shape}.")
    num_targets = _resolve_targets(num_targets, keep.shape[0])
    num_in = keep.sum(axis=0)
    num_out = keep.shape[0] - num_in
    target_keep = keep[:num_targets]
    in_avail = num_in[None, :] - target_keep
    out_avail = num_out[None, :] - ~target_keep
    return int(min(in_avail.min(), out_avail.min()))


def default_ks(max_k: int) -> list[int]:
    """1, 2, 4, 8, … below `max_k`, then `max_k` itself (the full curve up to the limit)."""
    if max_k < 1:
        raise ValueError(f"{max_k=} must be >= 1.")
    ks = [1 << i for i in range(max_k.bit_length()) if (1 << i) < max_k]
    return [*ks, int(max_k)]


def _ordered(keep_side: np.ndarray, u: np.ndarray, depth: int) -> np.ndarray:
    """[depth, N] model indices: each column's models where keep_side, in order of u."""
    return np.argsort(np.where(keep_side, u, np.inf), axis=0)[:depth]


def _without_target(order: np.ndarray, target: int, depth: int) -> np.ndarray:
    """Drops `target` from each column of order [depth + 1, N] -> [depth, N]."""
    is_t = order == target
    pos = np.where(is_t.any(axis=0), is_t.argmax(axis=0), depth + 1)
    rows = np.arange(depth)[:, None]
    rows = rows + (rows >= pos[None, :])
    return np.take_along_axis(order, rows, axis=0)


def _fit(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """values [k, N, A] -> (median [N, A], per-example std [N, A], pooled std), as LiRA."""
    return np.median(values, axis=0), np.std(values, axis=0), float(np.std(values))


def _scores(
    target_phi: np.ndarray,
    fit_in: tuple[np.ndarray, np.ndarray, float],
    fit_out: tuple[np.ndarray, np.ndarray, float],
    online: bool,
    fix_variance: bool,
) -> np.ndarray:
    """LiRA scores [N] of target_phi [N, A] from `_fit` of the compact IN/OUT shadow φ."""
    mu_out, sd_out, pooled_out = fit_out
    sigma_out = (pooled_out if fix_variance else sd_out) + _SIGMA_EPS
    if not online:
        return -scipy.stats.norm.logsf(target_phi, mu_out, sigma_out).mean(axis=-1)
    mu_in, sd_in, pooled_in = fit_in
    sigma_in = (pooled_in if fix_variance else sd_in) + _SIGMA_EPS
    llr = scipy.stats.norm.logpdf(target_phi, mu_in, sigma_in) - scipy.stats.norm.logpdf(
        target_phi, mu_out, sigma_out
    )
    return llr.mean(axis=-1)


def _group_masks(
    groups: np.ndarray | None,
    group_names: Sequence[str] | None,
    num_examples: int,
    num_targets: int | None = None,
) -> dict[str, np.ndarray]:
    """{name: bool mask}: [N] for groups [N], or [T, N] for per-target groups [T, N]
    (allowed when `num_targets` is given)."""
    masks = {_ALL: np.ones(num_examples, bool)}
    if groups is None:
        if group_names is not None:
            raise ValueError("group_names given without groups.")
        return masks
    groups = np.asarray(groups)
    shapes = [(num_examples,)] + ([] if num_targets is None else [(num_targets, num_examples)])
    if groups.shape not in shapes or not np.issubdtype(groups.dtype, np.integer):
        raise ValueError(
            f"groups must be integers of shape {' or '.join(map(str, shapes))} ([examples] or "
            f"[targets, examples]), got {groups.dtype} {groups.shape}."
        )
    if groups.ndim == 2:
        masks[_ALL] = np.ones(groups.shape, bool)
    if group_names is None:
        group_names = [str(g) for g in range(int(groups.max()) + 1)] if groups.size else []
    if groups.size and (groups.min() < 0 or groups.max() >= len(group_names)):
        raise ValueError(
            f"groups range [{groups.min()}, {groups.max()}] does not index "
            f"group_names={list(group_names)}; group g must be named group_names[g]."
        )
    for g, name in enumerate(group_names):
        if name == _ALL or name in masks:
            raise ValueError(f"group name {name!r} is reserved or repeated.")
        masks[name] = groups == g
    return masks


def _group_metrics(
    scores: np.ndarray,
    truth: np.ndarray,
    masks: dict[str, np.ndarray],
    fpr_levels: Sequence[float],
) -> dict[str, np.ndarray]:
    """[T, N] pooled scores -> {group: [1 + L] (AUC, TPR at each level)}; NaN if undefined."""
    out = {}
    for name, mask in masks.items():
        mask = np.broadcast_to(mask, scores.shape)
        s, t = scores[mask], truth[mask]
        if t.all() or not t.any():
            out[name] = np.full(1 + len(fpr_levels), np.nan)
            continue
        fpr, tpr = metrics.roc_curve(s, t)
        out[name] = np.array(
            [metrics.auc(fpr, tpr), *(metrics.tpr_at_fpr(fpr, tpr, x) for x in fpr_levels)]
        )
    return out


@contextlib.contextmanager
def _quiet():
    """Silences numpy's all-NaN / degenerate-input RuntimeWarnings (results are NaN)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _summary(values: np.ndarray, interval: float) -> dict:
    """values [K, D] -> median/lo/hi/mean over draws (NaN-aware) and the raw draws."""
    lo_pct, hi_pct = 50 * (1 - interval), 50 * (1 + interval)
    with _quiet():
        return {
            "median": np.nanmedian(values, axis=1),
            "lo": np.nanpercentile(values, lo_pct, axis=1),
            "hi": np.nanpercentile(values, hi_pct, axis=1),
            "mean": np.nanmean(values, axis=1),
            "draws": values,
        }


def shadow_model_curves(
    phi: np.ndarray,
    keep: np.ndarray,
    *,
    ks: Sequence[int] | None = None,
    num_draws: int = 10,
    num_targets: int | None = None,
    attacks: Sequence[str] = tuple(ATTACK_VARIANTS),
    groups: np.ndarray | None = None,
    group_names: Sequence[str] | None = None,
    fpr_levels: Sequence[float] = (1e-2, 1e-3),
    interval: float = 0.9,
    seed: int = 0,
    include_all_shadows: bool = True,
) -> dict:
    """Attack success as a function of the number of shadow models per distribution.

    Args:
      phi: [models, examples, queries] (or [models, examples]) LiRA φ of every model.
      keep: [models, examples] bool.
      ks: numbers of shadow models per side (default `default_ks(max_models_per_side)`).
      num_draws: independent random draws of the k models per (k, target).
      num_targets: models 0 .. num_targets−1 are in turn the target (default min(8, M)).
      attacks: names from `ATTACK_VARIANTS`.
      groups: optional [examples] int group of each example (e.g. `bucketize(mem)`), or
        [num_targets, examples] one per target (e.g. `bucketize` of
        `memorization.target_memorization`, which keeps each target's own outputs out of
        its grouping); curves are also computed restricted to each group ("num_examples"
        of a per-target group is the mean number of examples per target).
      group_names: name of group g at index g (default "0", "1", …).
      fpr_levels: FPR levels for the TPR curves.
      interval: central coverage of the percentile interval over draws (0.9: 5th–95th).
      seed: draw d uses np.random.default_rng([seed, d]).
      include_all_shadows: also evaluate each attack with all the shadows the
        leave-one-model-out attacks use (`shadow_sets.target_shadow_mask`: for a balanced
        mask count_in − 1 IN and count_out − 1 OUT per example, whatever the target's
        membership), the reference the curves approach.

    Returns:
      A JSON-serialisable dict (see `to_jsonable`: NaN -> None):
        {"ks", "num_models", "num_examples", "num_queries", "num_targets", "num_draws",
         "seed", "interval", "fpr_levels", "max_k",
         "groups": {group: {"num_examples"}}  ("all" first),
         "attacks": {attack: {"online", "fix_variance",
            "num_shadow_models": [2k (online) or k (offline) per k],
            "groups": {group: {
               "auc": {"median", "lo", "hi", "mean": [per k], "draws": [[per draw] per k]},
               "tpr_at_fpr": {str(level): same structure},
               "all_shadows": {"auc", "tpr_at_fpr": {str(level)}, "num_shadow_models"
                 (per example: IN + OUT online, OUT offline)} (if include_all_shadows)}}}}}
      A group whose pooled examples lack members or non-members has None metrics.

    Raises:
      ValueError: on bad shapes/NaN, unknown attacks, or a k above `max_models_per_side`.
    """
    phi, keep = _validate(phi, keep)
    num_models, num_examples, num_queries = phi.shape
    if num_models < 3:
        raise ValueError(
            f"Need at least 3 models (a target and an IN and OUT shadow), got {num_models}."
        )
    num_targets = _resolve_targets(num_targets, num_models)
    unknown = [a for a in attacks if a not in ATTACK_VARIANTS]
    if unknown or not attacks:
        raise ValueError(f"Unknown or no attack(s) {unknown}; valid: {list(ATTACK_VARIANTS)}.")
    attacks = list(dict.fromkeys(attacks))
    if num_draws < 1:
        raise ValueError(f"{num_draws=} must be >= 1.")
    if not 0 < interval < 1:
        raise ValueError(f"{interval=} must be in (0, 1), e.g. 0.9 for the 5th-95th percentiles.")
    max_k = max_models_per_side(keep, num_targets)
    if max_k < 1:
        raise ValueError(
            "Some example has no IN or no OUT shadow model for some target (max k = 0). Train "
            "more models or use a balanced keep mask with pkeep nearer 0.5."
        )
    ks = default_ks(max_k) if ks is None else sorted({int(k) for k in ks})
    if not ks or ks[0] < 1 or ks[-1] > max_k:
        raise ValueError(
            f"ks={ks} must lie in [1, {max_k}]: with {num_models} models and {num_targets} "
            f"targets, {max_k} is the most IN and OUT shadows every example has. Use "
            f"default_ks({max_k}) or fewer targets."
        )
    masks = _group_masks(groups, group_names, num_examples, num_targets)
    truth = keep[:num_targets]
    depth = ks[-1]

    # values[attack][group]: [K, D, 1 + L] (AUC, then TPR at each FPR level).
    values = {
        a: {g: np.empty((len(ks), num_draws, 1 + len(fpr_levels))) for g in masks} for a in attacks
    }
    for d in range(num_draws):
        u = np.random.default_rng([seed, d]).random((num_models, num_examples))
        order_in = _ordered(keep, u, depth + 1)
        order_out = _ordered(~keep, u, depth + 1)
        scores = {a: np.empty((len(ks), num_targets, num_examples)) for a in attacks}
        for t in range(num_targets):
            idx_in = _without_target(order_in, t, depth)[:, :, None]
            idx_out = _without_target(order_out, t, depth)[:, :, None]
            phi_in = np.take_along_axis(phi, idx_in, axis=0)  # [depth, N, A]
            phi_out = np.take_along_axis(phi, idx_out, axis=0)
            for i, k in enumerate(ks):
                fit_in, fit_out = _fit(phi_in[:k]), _fit(phi_out[:k])
                for a in attacks:
                    online, fix_variance = ATTACK_VARIANTS[a]
                    scores[a][i, t] = _scores(phi[t], fit_in, fit_out, online, fix_variance)
        for a in attacks:
            for i in range(len(ks)):
                for g, row in _group_metrics(scores[a][i], truth, masks, fpr_levels).items():
                    values[a][g][i, d] = row

    reference, all_sizes = {}, (0, 0)
    if include_all_shadows:
        shadow_masks = [shadow_sets.target_shadow_mask(keep, t, seed) for t in range(num_targets)]
        all_sizes = (
            int((shadow_masks[0] & keep).sum(0)[0]),
            int((shadow_masks[0] & ~keep).sum(0)[0]),
        )
        for a in attacks:
            online, fix_variance = ATTACK_VARIANTS[a]
            pooled = np.empty((num_targets, num_examples))
            for t, use in enumerate(shadow_masks):
                pooled[t] = lira_scores(
                    phi[t], phi, keep, online=online, fix_variance=fix_variance, shadow_mask=use
                )
            reference[a] = _group_metrics(pooled, truth, masks, fpr_levels)

    levels = [str(x) for x in fpr_levels]
    result_attacks = {}
    for a in attacks:
        online, fix_variance = ATTACK_VARIANTS[a]
        per_group = {}
        for g in masks:
            v = values[a][g]
            entry = {
                "auc": _summary(v[:, :, 0], interval),
                "tpr_at_fpr": {
                    lv: _summary(v[:, :, 1 + j], interval) for j, lv in enumerate(levels)
                },
            }
            if include_all_shadows:
                ref = reference[a][g]
                entry["all_shadows"] = {
                    "auc": ref[0],
                    "tpr_at_fpr": {lv: ref[1 + j] for j, lv in enumerate(levels)},
                    "num_shadow_models": sum(all_sizes) if online else all_sizes[1],
                }
            per_group[g] = entry
        result_attacks[a] = {
            "online": online,
            "fix_variance": fix_variance,
            "num_shadow_models": [2 * k if online else k for k in ks],
            "groups": per_group,
        }
    return to_jsonable(
        {
            "ks": ks,
            "max_k": max_k,
            "num_models": num_models,
            "num_examples": num_examples,
            "num_queries": num_queries,
            "num_targets": num_targets,
            "num_draws": num_draws,
            "seed": seed,
            "interval": interval,
            "fpr_levels": list(fpr_levels),
            "groups": {
                g: {"num_examples": int(m.sum()) if m.ndim == 1 else float(m.mean(0).sum())}
                for g, m in masks.items()
            },
            "attacks": result_attacks,
        }
    )


def _curve(result: dict, attack: str, group: str, metric: str, statistic: str) -> list:
    try:
        entry = result["attacks"][attack]["groups"][group]
    except KeyError:
        raise ValueError(
            f"No curve for {attack=}, {group=}; available attacks {list(result['attacks'])}, "
            f"groups {list(result['groups'])}."
        ) from None
    if metric == "auc":
        summary = entry["auc"]
    elif metric.startswith("tpr_at_fpr:"):
        level = metric.split(":", 1)[1]
        if level not in entry["tpr_at_fpr"]:
            raise ValueError(f"{metric=}: FPR level {level} not in {list(entry['tpr_at_fpr'])}.")
        summary = entry["tpr_at_fpr"][level]
    else:
        raise ValueError(
            f"{metric=} must be 'auc' or 'tpr_at_fpr:<level>', e.g. 'tpr_at_fpr:0.001'."
        )
    if statistic not in ("median", "mean", "lo", "hi"):
        raise ValueError(f"{statistic=} must be one of median, mean, lo, hi.")
    return summary[statistic]


def first_k_reaching(
    result: dict,
    *,
    attack: str = "lira_online_fixed_variance",
    target: float = 0.9,
    metric: str = "auc",
    statistic: str = "median",
) -> dict[str, int | None]:
    """Per group, the smallest measured k whose curve reaches `target` (None if never).

    Args:
      result: from `shadow_model_curves`.
      attack: which attack's curves.
      target: level to reach (e.g. AUC 0.9).
      metric: "auc" or "tpr_at_fpr:<level>" with a level of the result.
      statistic: which summary over draws: "median", "mean", "lo" or "hi".

    Returns:
      {group: k or None}, k being shadow models per side (IN and OUT each).
    """
    out = {}
    for group in result["groups"]:
        curve = _curve(result, attack, group, metric, statistic)
        hit = [k for k, v in zip(result["ks"], curve, strict=True) if v is not None and v >= target]
        out[group] = hit[0] if hit else None
    return out


def hellinger_squared(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> np.ndarray:
    """Squared Hellinger distance between N(μ₁, σ₁²) and N(μ₂, σ₂²), elementwise.

    H² = 1 − √(2σ₁σ₂/(σ₁²+σ₂²)) · exp(−Δ²/(4(σ₁²+σ₂²))), Δ = μ₁ − μ₂, evaluated as
    H² = −expm1(log BC) with log BC in log space (no overflow or underflow for extreme σ
    or Δ). Degenerate σ: one σ = 0 gives 1; both 0 gives 0 if Δ = 0, else 1.

    Args:
      mu1, sigma1, mu2, sigma2: broadcastable arrays; σ >= 0.

    Returns:
      H² in [0, 1], float64, the broadcast shape.

    Raises:
      ValueError: on NaN or negative σ.
    """
    mu1, sigma1, mu2, sigma2 = np.broadcast_arrays(
        *(np.asarray(x, dtype=np.float64) for x in (mu1, sigma1, mu2, sigma2))
    )
    if any(np.isnan(x).any() for x in (mu1, sigma1, mu2, sigma2)):
        raise ValueError("hellinger_squared got NaN means or standard deviations.")
    if (sigma1 < 0).any() or (sigma2 < 0).any():
        raise ValueError("Standard deviations must be >= 0.")
    with np.errstate(divide="ignore", invalid="ignore"):
        log_s1, log_s2 = np.log(sigma1), np.log(sigma2)
        log_sum_sq = np.logaddexp(2 * log_s1, 2 * log_s2)  # log(σ₁² + σ₂²)
        log_gap_term = 2 * np.log(np.abs(mu1 - mu2)) - np.log(4.0) - log_sum_sq
        log_bc = 0.5 * (np.log(2.0) + log_s1 + log_s2 - log_sum_sq) - np.exp(log_gap_term)
        h2 = -np.expm1(log_bc)
    both_zero = (sigma1 == 0) & (sigma2 == 0)
    h2 = np.where(both_zero, (mu1 != mu2).astype(np.float64), h2)
    return np.clip(h2, 0.0, 1.0)


def per_example_hellinger_squared(
    phi: np.ndarray, keep: np.ndarray, *, queries: Queries = "identity"
) -> np.ndarray:
    """H² between each example's IN and OUT Gaussians fitted to φ over all M models.

    Args:
      phi: [models, examples, queries] (or [models, examples]) LiRA φ.
      keep: [models, examples] bool.
      queries: "identity" (query 0) or "mean" (φ averaged over queries per model).

    Returns:
      [examples] H² in [0, 1] (fits as in `memorization.fit_gaussians`).
    """
    fits = fit_gaussians(phi, keep, queries=queries)
    return hellinger_squared(fits.mu_in, fits.sigma_in, fits.mu_out, fits.sigma_out)


def shadow_models_estimate(h2: np.ndarray, constant: float = 1.0) -> np.ndarray:
    """The Θ(1/H²) sample-complexity estimate: constant / H² shadow models (inf if H² = 0).

    The constant is not determined by the theory; 1 is a convention. Compare shapes
    across groups (ratios), not absolute values.
    """
    h2 = np.asarray(h2, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return constant / h2


class ModelsNeeded(NamedTuple):
    """The 1/H² prediction of shadow models per side, with an interval (`shadow_models_needed`).

    Attributes:
      per_side, per_side_lo, per_side_hi: [examples] predicted shadow models per side
        (IN and OUT each; inf where H² = 0) and the interval's ends.
      h2, h2_lo, h2_hi: [examples] the squared Hellinger distances behind them.
      gap, gap_se: [examples] the fitted IN − OUT gap of φ and its standard error.
      sigma_in, sigma_out: the within-example σ of each side, pooled over examples.
      level: the interval's confidence level.
    """

    per_side: np.ndarray
    per_side_lo: np.ndarray
    per_side_hi: np.ndarray
    h2: np.ndarray
    h2_lo: np.ndarray
    h2_hi: np.ndarray
    gap: np.ndarray
    gap_se: np.ndarray
    sigma_in: float
    sigma_out: float
    level: float


def shadow_models_needed(
    phi: np.ndarray,
    keep: np.ndarray,
    *,
    level: float = 0.95,
    queries: Queries = "mean",
    constant: float = 1.0,
) -> ModelsNeeded:
    """Each example's predicted shadow models per side, constant/H², with an interval.

    The model is the fixed-variance attack's: for example n, φ of an IN model ~ N(μ_in,n,
    σ_in²) and of an OUT model ~ N(μ_out,n, σ_out²), with one σ per side for all examples.
    From the n_in,n IN and n_out,n OUT models of each example (φ per model: query 0, or
    the mean over queries):

      * σ_side² = Σ_n Σ_(m in side) (φ[m, n] − mean_side,n)² / Σ_n (n_side,n − 1), the
        within-example variance pooled over examples (ddof 1 per example);
      * Δ̂_n = mean_in,n − mean_out,n with standard error s_n = √(σ_in²/n_in,n +
        σ_out²/n_out,n); since E[Δ̂²] = Δ² + s², the gap used is √max(Δ̂_n² − s_n², 0)
        (without the correction a pilot of 8 models would give every example an apparent
        gap of about s, and predict far too few models for the examples that have none);
      * H²_n = `hellinger_squared`(gap, σ_in, 0, σ_out), and per_side = constant / H²_n;
      * the interval: |Δ| ∈ [max(|Δ̂_n| − z·s_n, 0), |Δ̂_n| + z·s_n], z = Φ⁻¹((1 + level)/2),
        mapped through H² (increasing in |Δ|): per_side_lo = constant / H²(upper |Δ|),
        per_side_hi = constant / H²(lower |Δ|).

    With equal σ, H² = 1 − exp(−Δ²/(8σ²)): an effect of d = Δ/σ = 1 predicts 8.5 models
    per side, d = 2 predicts 2.5, d = 4 predicts 1.2. `models_needed_by_subsampling`
    measures the quantity the prediction is for (tests/test_sample_complexity.py checks
    them against each other on planted effects). A store of M models gives each
    leave-one-out target M/2 − 1 shadows per side, so k per side needs 2k + 2 models.

    Args:
      phi: [models, examples, queries] (or [models, examples]) LiRA φ.
      keep: [models, examples] bool; every example needs >= 2 IN and >= 2 OUT models.
      level: confidence level of the interval, in (0, 1).
      queries: "mean" (φ averaged over queries per model) or "identity" (query 0).
      constant: the constant of Θ(1/H²) (1 by convention, as `shadow_models_estimate`).

    Returns:
      `ModelsNeeded`.

    Raises:
      ValueError: on bad shapes, NaN, a level outside (0, 1), or examples with fewer than
        2 IN or 2 OUT models.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"{level=} must lie in (0, 1), e.g. 0.95.")
    phi, keep = _validate(phi, keep)
    if queries == "mean":
        values = phi.mean(axis=2)
    elif queries == "identity":
        values = phi[:, :, 0]
    else:
        raise ValueError(f"{queries=} must be 'mean' (all queries) or 'identity' (query 0).")
    check_coverage(keep, min_in=2, min_out=2)
    fits = []
    for side in (keep, ~keep):
        w = side.astype(np.float64)
        count = w.sum(axis=0)
        mean = (w * values).sum(axis=0) / count
        ss = (w * (values - mean) ** 2).sum()
        fits.append((mean, count, float(np.sqrt(ss / (count - 1).sum()))))
    (mean_in, n_in, sigma_in), (mean_out, n_out, sigma_out) = fits
    gap = mean_in - mean_out
    se = np.sqrt(sigma_in**2 / n_in + sigma_out**2 / n_out)
    z = float(scipy.stats.norm.ppf(0.5 * (1.0 + level)))
    corrected = np.sqrt(np.maximum(gap * gap - se * se, 0.0))
    low, high = np.maximum(np.abs(gap) - z * se, 0.0), np.abs(gap) + z * se

    def h2_of(delta):
        return hellinger_squared(delta, sigma_in, 0.0, sigma_out)

    h2, h2_lo, h2_hi = h2_of(corrected), h2_of(low), h2_of(high)
    return ModelsNeeded(
        shadow_models_estimate(h2, constant),
        shadow_models_estimate(h2_hi, constant),
        shadow_models_estimate(h2_lo, constant),
        h2,
        h2_lo,
        h2_hi,
        gap,
        se,
        sigma_in,
        sigma_out,
        float(level),
    )


def models_needed_by_subsampling(
    result: dict,
    *,
    attack: str = "lira_online_fixed_variance",
    fraction: float = 0.9,
    statistic: str = "median",
) -> dict[str, int | None]:
    """Per group, the measured shadow models per side: the first k at which the attack's
    AUC curve reaches `fraction` of its all-models advantage.

    k_needed = min{k in result["ks"] : AUC(k) − 0.5 >= fraction · (AUC_all − 0.5)}, with
    AUC(k) the curve's `statistic` over draws and AUC_all the "all_shadows" reference of
    `shadow_model_curves` (every leave-one-out shadow: M/2 − 1 per side for a balanced
    store). None when no k below the largest reaches it (at the largest k, M/2 − 1 for a
    balanced store, the curve is the reference itself, so reaching it there says only
    "at least that many"), or when AUC_all <= 0.5 (nothing to reach).

    Args:
      result: from `shadow_model_curves` with include_all_shadows=True.
      attack: which attack's curves.
      fraction: share of the all-models advantage to reach, in (0, 1].
      statistic: "median", "mean", "lo" or "hi" over draws.

    Returns:
      {group: k or None}.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"{fraction=} must lie in (0, 1], e.g. 0.9.")
    out = {}
    for group in result["groups"]:
        curve = _curve(result, attack, group, "auc", statistic)
        reference = result["attacks"][attack]["groups"][group].get("all_shadows")
        if reference is None:
            raise ValueError(
                "models_needed_by_subsampling needs the all-models reference: call "
                "shadow_model_curves with include_all_shadows=True."
            )
        full = reference["auc"]
        if full is None or full <= 0.5:
            out[group] = None
            continue
        goal = 0.5 + fraction * (full - 0.5)
        hit = [k for k, v in zip(result["ks"], curve, strict=True) if v is not None and v >= goal]
        out[group] = hit[0] if hit and hit[0] < result["max_k"] else None
    return out


def compare_with_hellinger(
    result: dict,
    h2: np.ndarray,
    groups: np.ndarray | None = None,
    group_names: Sequence[str] | None = None,
    *,
    attack: str = "lira_online_fixed_variance",
    target: float = 0.9,
    metric: str = "auc",
) -> dict:
    """Per group: measured k reaching `target` next to the 1/H² estimate.

    Args:
      result: from `shadow_model_curves`, called with the same groups and names.
      h2: [examples] from `per_example_hellinger_squared`.
      groups, group_names: as given to `shadow_model_curves`.
      attack, target, metric: as in `first_k_reaching` (median over draws).

    Returns:
      JSON-serialisable {group: {"num_examples", "measured_k" (None if never reached),
      "median_h2", "mean_h2", "median_models_estimate" (median of 1/H², None if inf)}}.
    """
    h2 = np.asarray(h2, dtype=np.float64)
    masks = _group_masks(groups, group_names, h2.shape[0])
    if list(masks) != list(result["groups"]):
        raise ValueError(
            f"groups {list(masks)} differ from the result's {list(result['groups'])}; pass "
            "the same groups and group_names as to shadow_model_curves."
        )
    measured = first_k_reaching(result, attack=attack, target=target, metric=metric)
    estimate = shadow_models_estimate(h2)
    out = {}
    for name, mask in masks.items():
        empty = not mask.any()
        out[name] = {
            "num_examples": int(mask.sum()),
            "measured_k": measured[name],
            "median_h2": np.nan if empty else np.median(h2[mask]),
            "mean_h2": np.nan if empty else np.mean(h2[mask]),
            "median_models_estimate": np.nan if empty else np.median(estimate[mask]),
        }
    return to_jsonable(out)


def memorization_privacy_spearman(mem: np.ndarray, score: np.ndarray) -> dict:
    """Spearman rank correlation between memorization and privacy score.

    Pairs with a NaN are dropped (inf privacy scores are kept: they rank highest).

    Args:
      mem: [examples] memorization.
      score: [examples] privacy score.

    Returns:
      {"rho", "pvalue" (None if undefined, e.g. constant input), "num_examples",
       "num_dropped"}.
    """
    mem = np.asarray(mem, dtype=np.float64)
    score = np.asarray(score, dtype=np.float64)
    if mem.shape != score.shape or mem.ndim != 1:
        raise ValueError(f"mem {mem.shape} and score {score.shape} must both be [examples].")
    ok = ~(np.isnan(mem) | np.isnan(score))
    if ok.sum() < 3:
        raise ValueError(f"Spearman needs >= 3 examples without NaN, got {int(ok.sum())}.")
    with _quiet():
        res = scipy.stats.spearmanr(mem[ok], score[ok])
    return to_jsonable(
        {
            "rho": float(res.statistic),
            "pvalue": float(res.pvalue),
            "num_examples": int(ok.sum()),
            "num_dropped": int((~ok).sum()),
        }
    )

"""Leave-one-model-out evaluation of score-based attacks on a store's φ.

Each of the first `num_targets` models is in turn the target and all other models are its
shadows; the target's keep row is the ground truth. Scores and truths are pooled over
targets before computing the ROC (the LiRA protocol).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np

from lira_jax import metrics, signals
from lira_jax.attacks.lira import global_threshold_scores, lira_scores

__all__ = ["ATTACKS", "AttackFn", "evaluate_attacks", "evaluate_logits", "resolve_attacks"]

AttackFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""fn(target_phi [N, A], shadow_phi [S, N, A], shadow_keep [S, N]) -> scores [N]."""


def _global_threshold(
    target_phi: np.ndarray, shadow_phi: np.ndarray, shadow_keep: np.ndarray
) -> np.ndarray:
    del shadow_phi, shadow_keep  # The baseline ignores the shadow models.
    return global_threshold_scores(target_phi)


ATTACKS: dict[str, AttackFn] = {
    "lira_online": functools.partial(lira_scores, online=True, fix_variance=False),
    "lira_online_fixed_variance": functools.partial(lira_scores, online=True, fix_variance=True),
    "lira_offline": functools.partial(lira_scores, online=False, fix_variance=False),
    "lira_offline_fixed_variance": functools.partial(lira_scores, online=False, fix_variance=True),
    "global_threshold": _global_threshold,
}


def resolve_attacks(names: str | Sequence[str]) -> list[str]:
    """Expands and validates attack names.

    Args:
      names: "all", one name, a comma-separated string of names, or a sequence of names.

    Returns:
      The attack names in the order given ("all": the order of `ATTACKS`), without repeats.

    Raises:
      ValueError: if a name is unknown or nothing is selected.
    """
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    names = list(names)
    if "all" in names:
        return list(ATTACKS)
    unknown = [n for n in names if n not in ATTACKS]
    if unknown:
        raise ValueError(f"Unknown attack(s) {unknown}; valid names: {['all', *ATTACKS]}.")
    if not names:
        raise ValueError(f"No attack selected; valid names: {['all', *ATTACKS]}.")
    return list(dict.fromkeys(names))


def evaluate_attacks(
    phi: np.ndarray,
    keep: np.ndarray,
    attack_names: str | Sequence[str],
    num_targets: int,
) -> tuple[dict[str, dict], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Runs attacks with each of the first `num_targets` models as the target.

    Args:
      phi: [M, N, A] float φ (see `lira_jax.signals.logit_scaled_confidence`).
      keep: [M, N] bool, whether model m trained on example n.
      attack_names: names accepted by `resolve_attacks` (e.g. "all").
      num_targets: how many models (0 .. num_targets-1) serve in turn as the target.

    Returns:
      (results, curves): results[name] is `metrics.summarize` of the pooled scores plus
      "num_targets"; curves[name] = (fpr, tpr) of the pooled ROC.

    Raises:
      ValueError: on bad shapes, M < 2, or num_targets outside [1, M].
    """
    phi = np.asarray(phi, dtype=np.float64)
    keep = np.asarray(keep)
    if phi.ndim != 3:
        raise ValueError(f"phi must be [M, N, A], got shape {phi.shape}.")
    if keep.dtype != bool or keep.shape != phi.shape[:2]:
        raise ValueError(
            f"keep must be a bool array of shape [M, N]={phi.shape[:2]}, got "
            f"{keep.dtype} {keep.shape}."
        )
    num_models = phi.shape[0]
    if num_models < 2:
        raise ValueError(f"Need at least 2 models (one target, one shadow), got M={num_models}.")
    if not 1 <= num_targets <= num_models:
        raise ValueError(f"{num_targets=} must be between 1 and the number of models {num_models}.")
    names = resolve_attacks(attack_names)

    scores = {name: [] for name in names}
    truths = []
    for t in range(num_targets):
        shadows = np.arange(num_models) != t
        shadow_phi, shadow_keep = phi[shadows], keep[shadows]
        for name in names:
            scores[name].append(ATTACKS[name](phi[t], shadow_phi, shadow_keep))
        truths.append(keep[t])
    truth = np.concatenate(truths)

    results, curves = {}, {}
    for name in names:
        pooled = np.concatenate(scores[name])
        results[name] = {**metrics.summarize(pooled, truth), "num_targets": num_targets}
        curves[name] = metrics.roc_curve(pooled, truth)
    return results, curves


def evaluate_logits(
    logits: np.ndarray,
    labels: np.ndarray,
    keep: np.ndarray,
    attack_names: str | Sequence[str],
    num_targets: int,
) -> tuple[dict[str, dict], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Runs attacks on a store's arrays (the entry point of `experiments.attack`).

    Args:
      logits: [M, N, A, C] logits of every model on every example under every query.
      labels: [N] int true labels.
      keep: [M, N] bool membership.
      attack_names: names accepted by `resolve_attacks`.
      num_targets: models 0 .. num_targets-1 serve in turn as the target.

    Returns:
      (results, curves) as in `evaluate_attacks`.

    Raises:
      ValueError: on NaN/inf logits, bad shapes or labels, or a bad `num_targets`.
    """
    logits = np.asarray(logits)
    if not np.all(np.isfinite(logits)):
        bad = np.unique(np.argwhere(~np.isfinite(logits))[:, 0])
        raise ValueError(
            f"logits contain NaN/inf for model(s) {bad.tolist()[:10]}: those models diverged. "
            "Retrain them (e.g. with a lower --learning_rate) before attacking."
        )
    names = resolve_attacks(attack_names)
    phi = signals.logit_scaled_confidence(logits, labels, example_axis=1)
    return evaluate_attacks(phi, keep, names, num_targets)

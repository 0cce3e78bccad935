"""Membership-inference attacks on stored per-example signals."""

from lira_jax.attacks.evaluate import (
    ATTACKS,
    AttackFn,
    evaluate_attacks,
    evaluate_logits,
    resolve_attacks,
)
from lira_jax.attacks.lira import global_threshold_scores, lira_scores

__all__ = [
    "ATTACKS",
    "AttackFn",
    "evaluate_attacks",
    "evaluate_logits",
    "global_threshold_scores",
    "lira_scores",
    "resolve_attacks",
]

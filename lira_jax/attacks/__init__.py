"""Membership-inference attacks on per-model signals, and their leave-one-out evaluation;
`external`: the audit of a target lira_jax did not train (its outputs against all of a
store's shadows); `blia`: passive label inference on binary classifiers and the label-DP
audit."""

from lira_jax.attacks import blia, external
from lira_jax.attacks.bank import (
    AttackOutput,
    AttackUndefined,
    SignalBank,
    signal_bank_from_logits,
)
from lira_jax.attacks.evaluate import (
    ATTACKS,
    EXPOSURES,
    NEEDS_SCORES,
    Attack,
    AttackFn,
    evaluate_attacks,
    evaluate_logits,
    evaluate_signals,
    exposed_bank,
    label_exposure,
    needed_signals,
    needs_scores,
    resolve_attacks,
)
from lira_jax.attacks.lira import (
    global_threshold_attack,
    global_threshold_scores,
    lira_attack,
    lira_scores,
)
from lira_jax.attacks.reference import reference_attack
from lira_jax.attacks.rmia import rmia_attack
from lira_jax.attacks.sablayrolles import sablayrolles_attack
from lira_jax.attacks.shokri import shokri_attack
from lira_jax.attacks.song import song_attack
from lira_jax.attacks.yeom import yeom_attack

__all__ = [
    "ATTACKS",
    "EXPOSURES",
    "NEEDS_SCORES",
    "Attack",
    "AttackFn",
    "AttackOutput",
    "AttackUndefined",
    "SignalBank",
    "blia",
    "external",
    "evaluate_attacks",
    "evaluate_logits",
    "evaluate_signals",
    "exposed_bank",
    "global_threshold_attack",
    "global_threshold_scores",
    "label_exposure",
    "lira_attack",
    "lira_scores",
    "needed_signals",
    "needs_scores",
    "reference_attack",
    "resolve_attacks",
    "rmia_attack",
    "sablayrolles_attack",
    "shokri_attack",
    "signal_bank_from_logits",
    "song_attack",
    "yeom_attack",
]

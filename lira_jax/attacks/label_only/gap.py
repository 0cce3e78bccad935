"""The gap attack: member iff the target labels the example correctly.

Design notes: the baseline of label-only membership inference (Yeom et al. 2018; the
"gap attack" of Choquette-Choo et al. 2021). The score is the target's 0/1 correctness on
the identity query (query 0), so the ROC has a single interior point and the attack's own
rule (member iff correct) is the operating point; its balanced accuracy is exactly
0.5 + 0.5·(accuracy on members − accuracy on non-members), the train–test gap. Uses no
shadow models.
"""

from __future__ import annotations

import numpy as np

from lira_jax.attacks.bank import AttackOutput
from lira_jax.attacks.label_only.labels import label_bank

__all__ = ["gap_attack"]


def gap_attack(bank, targets: np.ndarray, *, seed: int = 0) -> AttackOutput:
    """Gap-attack scores of each target. Uses no shadow models.

    Args:
      bank: a `LabelBank`, or a `SignalBank` with predicted labels (only its labels-only
        view is read).
      targets: [T] target model indices.
      seed: unused (no randomness); accepted like every registered attack.

    Returns:
      `AttackOutput` with scores [T, N] 1.0 where the target's identity-query label is
      correct, else 0.0, and threshold 1 (member iff correct).
    """
    del seed
    labels_only = label_bank(bank)
    targets = labels_only.check_targets(targets)
    correct = labels_only.correct[targets, :, 0]
    return AttackOutput(scores=correct.astype(np.float64), threshold=1.0)

"""Label-only membership inference: attacks that see only the target's predicted labels.

  * `gap_attack`: correct on the identity query (no shadows).
  * `augmentation_count_attack`, `augmentation_model_attack`, `augmentation_lira_attack`:
    the 0/1 correctness vector over the store's queries (Choquette-Choo et al. 2021).
  * `boundary_attack` on `hsj_distances`: HopSkipJump distance to the decision boundary,
    from saved parameters (Choquette-Choo et al.; Li & Zhang 2021).
  * `transfer_attack` on `transfer_shadow_losses`: a shadow trained on the target's labels
    of the test split (Li & Zhang 2021).
  * `evaluate_querying` (`querying`): the last two on a training run (`QUERYING_ATTACKS`:
    what they need, `missing_inputs`: what a run lacks), as `experiments.attack` runs them.

Every attack takes a bank (a `LabelBank`, or a `SignalBank` reduced to its labels-only
view) and target indices, like the score-based attacks, and returns an `AttackOutput`.
The boundary and transfer modules (which need the models and the training engine) are
imported on first use, so importing the attacks does not import flax or orbax.
"""

import importlib

from lira_jax.attacks.label_only.augmentation import (
    augmentation_count_attack,
    augmentation_lira_attack,
    augmentation_model_attack,
)
from lira_jax.attacks.label_only.gap import gap_attack
from lira_jax.attacks.label_only.labels import (
    LabelBank,
    label_bank,
    label_bank_from_logits,
    predicted_labels,
)

# The attacks that query the models (registered by `experiments.attack`, not in
# `lira_jax.attacks.ATTACKS`: their inputs come from the run, see `querying`).
QUERYING_ATTACKS = {
    "label_only_boundary": (
        "label-only: HopSkipJump distance to the decision boundary (Choquette-Choo et al. "
        "2021; Li & Zhang 2021)"
    ),
    "label_only_transfer": (
        "label-only: loss of a shadow trained on the target's labels of the test split "
        "(Li & Zhang 2021)"
    ),
}

_LAZY = {
    "BoundaryDistances": "boundary",
    "HSJConfig": "boundary",
    "boundary_attack": "boundary",
    "clip_range": "boundary",
    "hsj_distances": "boundary",
    "random_inputs": "boundary",
    "QueryOptions": "querying",
    "evaluate_querying": "querying",
    "missing_inputs": "querying",
    "transfer_attack": "transfer",
    "transfer_shadow_losses": "transfer",
}


def __getattr__(name):
    if name in _LAZY:
        module = importlib.import_module(f"lira_jax.attacks.label_only.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BoundaryDistances",
    "HSJConfig",
    "LabelBank",
    "QUERYING_ATTACKS",
    "QueryOptions",
    "augmentation_count_attack",
    "augmentation_lira_attack",
    "augmentation_model_attack",
    "boundary_attack",
    "clip_range",
    "evaluate_querying",
    "gap_attack",
    "hsj_distances",
    "label_bank",
    "label_bank_from_logits",
    "missing_inputs",
    "predicted_labels",
    "random_inputs",
    "transfer_attack",
    "transfer_shadow_losses",
]

"""The transfer attack (Li & Zhang 2021): a shadow model that imitates the target's labels.

Design notes: the attacker relabels an auxiliary data set (here the dataset's test split,
which no model of the run trained on) with the target's predicted labels, trains a shadow
model on it, and reads membership from the shadow's cross-entropy on a candidate (x, y):
the shadow reproduces the target's decision function, and a member is one the target
fits well. A candidate the target labels differently from y is scored as a non-member
(below every candidate it labels y). Only the target's predicted labels are used (on the
auxiliary set and on the candidates' identity query); the shadow model is the attacker's
own, so its loss is available.

All targets' shadow models train in one engine block (vmapped, sharded over devices like
the run's own models) with the run's `TrainConfig`. The engine trains every model of a
block on one label vector, while each target relabels the auxiliary set differently, so
the block's data are T copies of the auxiliary set, copy t carrying target t's labels,
and shadow t's keep row selects copy t (memory T × the auxiliary set). Its keys derive
from the attack's seed, a stream apart from the run's models. Uses no shadow models of
the run, so no equal-size shadow sets are involved.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import jax
import numpy as np

from lira_jax import signals
from lira_jax.attacks.bank import AttackOutput, AttackUndefined
from lira_jax.attacks.label_only.labels import label_bank
from lira_jax.data.augment import Query
from lira_jax.train.engine import Engine, TrainConfig, steps_per_epoch
from lira_jax.train.query import query_logits

__all__ = ["transfer_attack", "transfer_shadow_losses"]

_STREAM = 0x7A5F


def transfer_shadow_losses(
    train_config: TrainConfig,
    x_aux: np.ndarray,
    aux_labels: np.ndarray,
    x: np.ndarray,
    labels: np.ndarray,
    *,
    seed: int = 0,
    devices: Sequence[jax.Device] | None = None,
    progress: Callable[[dict], None] | None = None,
) -> np.ndarray:
    """Trains one shadow per target on the relabelled auxiliary set; its loss on candidates.

    Args:
      train_config: the run's `TrainConfig` (architecture, epochs, optimiser, augmentation).
      x_aux: [N_aux, ...] auxiliary inputs (e.g. the dataset's test split).
      aux_labels: [T, N_aux] int, target t's predicted label of each auxiliary input
        (argmax of its logits: labels only).
      x: [N, ...] candidate inputs (the membership pool).
      labels: [N] int candidate labels.
      seed: seed of the shadows' initialisation and data order.
      devices: devices the shadows are sharded over (default: all local devices).
      progress: the engine's per-epoch callback.

    Returns:
      [T, N] float64 cross-entropy of shadow t on (x_n, labels_n).

    Raises:
      ValueError: shapes that disagree or labels outside [0, num_classes).
    """
    aux_labels = np.asarray(aux_labels)
    num_aux = np.shape(x_aux)[0]
    if aux_labels.ndim != 2 or aux_labels.shape[1] != num_aux or aux_labels.shape[0] < 1:
        raise ValueError(
            f"aux_labels has shape {aux_labels.shape}; it must be [T, N_aux] with "
            f"N_aux={num_aux} (one row of predicted labels per target)."
        )
    if not np.issubdtype(aux_labels.dtype, np.integer) or (
        aux_labels.min() < 0 or aux_labels.max() >= train_config.num_classes
    ):
        raise ValueError(
            f"aux_labels must be ints in [0, {train_config.num_classes}), got "
            f"{aux_labels.dtype} in [{aux_labels.min()}, {aux_labels.max()}]."
        )
    num_targets = aux_labels.shape[0]
    stream_seed = int(np.random.SeedSequence([seed, _STREAM]).generate_state(1)[0] >> 1)
    config = dataclasses.replace(train_config, seed=stream_seed)
    x_all = np.concatenate([np.asarray(x_aux, np.float32)] * num_targets)
    keep = np.kron(np.eye(num_targets, dtype=bool), np.ones((1, num_aux), bool))
    engine = Engine(
        config,
        x_all,
        aux_labels.reshape(-1).astype(np.int32),
        steps_per_epoch(keep, config.batch_size),
        devices=devices,
    )
    params = engine.train(np.arange(num_targets), keep, progress=progress)
    logits = query_logits(engine.model, params, np.asarray(x, np.float32), (Query(False, 0, 0),))
    return signals.cross_entropy(logits[:, :, 0], labels, example_axis=1)


def transfer_attack(
    bank, targets: np.ndarray, *, shadow_losses: np.ndarray | None = None, seed: int = 0
) -> AttackOutput:
    """Transfer-attack scores: −(shadow loss) where the target predicts the label.

    Uses no shadow models of the run (the shadows are trained on the auxiliary set).

    Args:
      bank: a `LabelBank` or `SignalBank` with predicted labels (query 0 is read).
      targets: [T] target model indices.
      shadow_losses: [T, N] `transfer_shadow_losses` for these targets, in order; None: the
        attack is undefined (reported so).
      seed: unused here (the shadows' seed is `transfer_shadow_losses`'s).

    Returns:
      `AttackOutput` with scores [T, N]: −loss where the target's label is y, and one
      value below all of those elsewhere; extras {"agreement"}: the fraction of candidates
      the target labels y.
    """
    del seed
    if shadow_losses is None:
        raise AttackUndefined(
            "needs the dataset's test split as auxiliary data and shadow models trained on "
            "it (transfer_shadow_losses)"
        )
    labels_only = label_bank(bank)
    targets = labels_only.check_targets(targets)
    losses = np.asarray(shadow_losses, np.float64)
    if losses.shape != (len(targets), labels_only.num_examples):
        raise ValueError(
            f"shadow_losses has shape {losses.shape}; it must be [T, N]="
            f"{(len(targets), labels_only.num_examples)}, one row per target in order."
        )
    agree = labels_only.correct[targets, :, 0]
    scores = -losses
    floor = scores[agree].min() - 1.0 if agree.any() else -1.0
    return AttackOutput(
        scores=np.where(agree, scores, floor), extras={"agreement": float(agree.mean())}
    )

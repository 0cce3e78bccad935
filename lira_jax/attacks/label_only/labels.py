"""What a target that exposes only labels gives: its predicted label for every query.

Design notes: the label-only attacks take a `LabelBank` — membership, the predicted label
of every model on every example under every query, and the true labels — and nothing else,
so no score can leak into them: a logit-based bank is reduced to its labels-only view
(`label_bank`) before any label-only attack sees it, and two sets of logits with the same
argmax give the same `LabelBank` and therefore the same scores. Predicted labels are the
argmax over classes of the stored logits (ties go to the lowest class index, numpy's and
JAX's rule); the derived 0/1 correctness [M, N, A] is computed once per bank and cached.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from lira_jax.attacks.bank import check_external, check_targets

__all__ = ["LabelBank", "label_bank", "label_bank_from_logits", "predicted_labels"]


@dataclasses.dataclass(frozen=True, eq=False)
class LabelBank:
    """Labels-only signals of M models on N examples under A queries.

    Attributes:
      keep: [M, N] bool, whether model m trained on example n.
      predicted: [M, N, A] int, model m's predicted label for example n under query a
        (query 0 is the identity).
      labels: [N] int true labels.
      num_external: the last rows that are external targets (their keep rows are False
        filler; see `lira_jax.attacks.bank`).
    """

    keep: np.ndarray
    predicted: np.ndarray
    labels: np.ndarray
    num_external: int = 0
    _cache: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        keep = np.asarray(self.keep)
        if keep.dtype != bool or keep.ndim != 2:
            raise ValueError(f"keep must be a bool [M, N] array, got {keep.dtype} {keep.shape}.")
        if keep.shape[0] < 2:
            raise ValueError(
                f"Need at least 2 models (one target, one shadow), got M={keep.shape[0]}."
            )
        predicted = np.asarray(self.predicted)
        if (
            predicted.ndim != 3
            or predicted.shape[:2] != keep.shape
            or predicted.shape[2] < 1
            or not np.issubdtype(predicted.dtype, np.integer)
        ):
            raise ValueError(
                f"predicted must be an int [M, N, A] array with [M, N]={keep.shape} and A >= 1, "
                f"got {predicted.dtype} {predicted.shape}."
            )
        labels = np.asarray(self.labels)
        if labels.shape != (keep.shape[1],) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                f"labels must be an int array of shape [N]=({keep.shape[1]},), got "
                f"{labels.dtype} {labels.shape}."
            )
        check_external(keep, self.num_external)
        object.__setattr__(self, "keep", keep)
        object.__setattr__(self, "predicted", predicted)
        object.__setattr__(self, "labels", labels)

    @property
    def num_models(self) -> int:
        return self.keep.shape[0]

    @property
    def num_examples(self) -> int:
        return self.keep.shape[1]

    @property
    def num_queries(self) -> int:
        return self.predicted.shape[2]

    @property
    def correct(self) -> np.ndarray:
        """[M, N, A] bool: the predicted label equals the true label (cached)."""
        return self.cached(("correct",), lambda: self.predicted == self.labels[None, :, None])

    def cached(self, key: tuple, compute: Callable[[], Any]) -> Any:
        """Memoises a statistic shared by several attacks."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    @property
    def num_store_models(self) -> int:
        """Rows that are store models (all but the external targets)."""
        return self.num_models - self.num_external

    def check_targets(self, targets) -> np.ndarray:
        """Validates target model indices; returns them as an int64 [T] array."""
        return check_targets(targets, self.num_models, self.num_external)


def label_bank(bank: Any) -> LabelBank:
    """The labels-only view of a bank: membership, predicted labels and true labels only.

    Args:
      bank: a `LabelBank` (returned as is) or a `lira_jax.attacks.SignalBank` with the
        "predicted" signal and labels (its view is cached on it, so the attacks run on one
        bank share the correctness array).

    Raises:
      ValueError: the bank lacks predicted labels or true labels (naming how to get them).
    """
    if isinstance(bank, LabelBank):
        return bank
    predicted, labels = getattr(bank, "predicted", None), getattr(bank, "labels", None)
    if predicted is None or labels is None:
        raise ValueError(
            "Label-only attacks need the bank's predicted labels and true labels; build it "
            "with `signal_bank_from_logits` including the 'predicted' signal, or pass a "
            "`LabelBank` (`label_bank_from_logits`)."
        )
    external = getattr(bank, "num_external", 0)
    return bank.cached(
        ("label_bank",), lambda: LabelBank(bank.keep, predicted, labels, num_external=external)
    )


def predicted_labels(logits: Any, *, chunk_elements: int = 1 << 24) -> np.ndarray:
    """Argmax over the last (class) axis, streamed over the first axis.

    Args:
      logits: [M, ..., C] array-like whose `logits[m0:m1]` reads a block (numpy array,
        zarr/tensorstore array).
      chunk_elements: about how many logits are read at once.

    Returns:
      [M, ...] int16 labels (int32 when C > 32767).
    """
    shape = tuple(logits.shape)
    num_classes = shape[-1]
    dtype = np.int16 if num_classes <= np.iinfo(np.int16).max else np.int32
    out = np.empty(shape[:-1], dtype=dtype)
    step = max(1, chunk_elements // max(1, int(np.prod(shape[1:]))))
    for m0 in range(0, shape[0], step):
        block = np.asarray(logits[m0 : min(m0 + step, shape[0])])  # lazy arrays: in bounds
        if np.isnan(block).any():
            bad = sorted({m0 + int(i) for i in np.argwhere(np.isnan(block))[:, 0]})
            raise ValueError(
                f"logits of model(s) {bad[:10]} contain NaN: their labels are undefined. "
                "Retrain them (e.g. with a lower --learning_rate) before attacking."
            )
        out[m0 : m0 + block.shape[0]] = block.argmax(axis=-1)
    return out


def label_bank_from_logits(
    logits: Any, labels: np.ndarray, keep: np.ndarray, *, chunk_elements: int = 1 << 24
) -> LabelBank:
    """A `LabelBank` from a store's logits [M, N, A, C], streamed in blocks of models.

    Raises:
      ValueError: NaN logits (naming the models), or shapes that disagree.
    """
    shape = tuple(logits.shape)
    if len(shape) != 4:
        raise ValueError(f"logits must be [M, N, A, C], got shape {shape}.")
    return LabelBank(keep, predicted_labels(logits, chunk_elements=chunk_elements), labels)

"""Per-example statistics computed from stored logits, on the host in float64.

Every function takes `logits` of shape [..., C] (any leading axes, e.g. the store's
[models, examples, queries, classes]) and integer `labels`, and returns an array of
shape logits.shape[:-1].

How labels are matched to logits:
  * `example_axis=None` (default): `labels` must already broadcast, with the usual numpy
    rules (aligned from the right), against logits.shape[:-1]. E.g. logits [N, C] with
    labels [N]; or logits [M, N, A, C] with labels [N, 1] or per-model labels [M, N, 1].
  * `example_axis=k`: `labels` has shape [N] and indexes axis k of logits.shape[:-1]
    (negative k counts from the end of logits.shape[:-1]). E.g. logits [M, N, A, C] with
    labels [N] and example_axis=1, the usual call on a store.

`align_labels` exposes the second rule on its own.

Design notes: the signals are computed from logits rather than probabilities so that no
information is lost when a softmax saturates. The LiRA score
φ = log p_y − log Σ_{y'≠y} p_{y'} equals z_y − logsumexp_{y'≠y} z_{y'} (the softmax
normaliser cancels), which we evaluate directly with a max-shifted logsumexp over the
logits with the true class masked out. This is exact even when p_y rounds to 1, where
the reference's `log(1 - p_y + 1e-45)` saturates at about 103.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "align_labels",
    "correctness",
    "cross_entropy",
    "log_softmax64",
    "logit_scaled_confidence",
]


def _logsumexp(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Max-shifted logsumexp; -inf where every entry is -inf."""
    m = np.max(x, axis=axis, keepdims=True)
    m_safe = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(x - m_safe), axis=axis, keepdims=True)) + m_safe
    return np.squeeze(out, axis=axis)


def log_softmax64(logits: np.ndarray) -> np.ndarray:
    """Log-softmax over the last axis in float64, subtracting the max logit first.

    Args:
      logits: [..., C] real array (any float dtype).

    Returns:
      [..., C] float64 log-probabilities.
    """
    z = np.asarray(logits, dtype=np.float64)
    z = z - np.max(z, axis=-1, keepdims=True)
    return z - np.log(np.sum(np.exp(z), axis=-1, keepdims=True))


def align_labels(labels: np.ndarray, batch_shape: tuple[int, ...], example_axis: int) -> np.ndarray:
    """Reshapes labels [N] so that they broadcast along `example_axis` of `batch_shape`.

    Args:
      labels: [N] integer labels.
      batch_shape: logits.shape[:-1], e.g. (M, N, A).
      example_axis: axis of `batch_shape` that indexes examples (may be negative).

    Returns:
      labels reshaped to [N, 1, ..., 1] with one trailing 1 per axis after `example_axis`.

    Raises:
      ValueError: if labels is not 1-D or its length differs from batch_shape[example_axis].
    """
    labels = np.asarray(labels)
    ndim = len(batch_shape)
    if not -ndim <= example_axis < ndim:
        raise ValueError(f"{example_axis=} is out of range for logits batch shape {batch_shape}.")
    axis = example_axis % ndim
    if labels.ndim != 1 or labels.shape[0] != batch_shape[axis]:
        raise ValueError(
            f"labels.shape={labels.shape} must be [N] with N={batch_shape[axis]} "
            f"(logits batch shape {batch_shape}, {example_axis=})."
        )
    return labels.reshape(labels.shape + (1,) * (ndim - axis - 1))


def _prepare(
    logits: np.ndarray, labels: np.ndarray, example_axis: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Returns float64 logits [..., C] and int labels broadcast to logits.shape[:-1]."""
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim < 1 or z.shape[-1] < 2:
        raise ValueError(f"logits must have shape [..., C] with C >= 2, got {z.shape}.")
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}.")
    batch_shape = z.shape[:-1]
    if example_axis is not None:
        labels = align_labels(labels, batch_shape, example_axis)
    try:
        labels = np.broadcast_to(labels, batch_shape)
    except ValueError:
        raise ValueError(
            f"labels.shape={labels.shape} does not broadcast to logits.shape[:-1]={batch_shape}; "
            "pass example_axis=... for [N] labels, or reshape the labels (e.g. labels[:, None])."
        ) from None
    num_classes = z.shape[-1]
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"labels must lie in [0, {num_classes}), got range [{labels.min()}, {labels.max()}]."
        )
    return z, labels


def logit_scaled_confidence(
    logits: np.ndarray, labels: np.ndarray, *, example_axis: int | None = None
) -> np.ndarray:
    """LiRA's logit-scaled confidence φ = log p_y − log Σ_{y'≠y} p_{y'}.

    Computed as z_y − logsumexp_{y'≠y} z_{y'} in float64, exact for any finite logits.

    Args:
      logits: [..., C] logits.
      labels: integer labels; see the module docstring for how they are matched.
      example_axis: if given, `labels` is [N] and indexes this axis of logits.shape[:-1].

    Returns:
      φ of shape logits.shape[:-1], float64.
    """
    z, y = _prepare(logits, labels, example_axis)
    z_y = np.take_along_axis(z, y[..., None], axis=-1)[..., 0]
    is_label = np.arange(z.shape[-1]) == y[..., None]
    z_rest = np.where(is_label, -np.inf, z)
    return z_y - _logsumexp(z_rest, axis=-1)


def cross_entropy(
    logits: np.ndarray, labels: np.ndarray, *, example_axis: int | None = None
) -> np.ndarray:
    """Cross-entropy loss ℓ = −log p_y in float64.

    Args:
      logits: [..., C] logits.
      labels: integer labels; see the module docstring for how they are matched.
      example_axis: if given, `labels` is [N] and indexes this axis of logits.shape[:-1].

    Returns:
      ℓ of shape logits.shape[:-1], float64, >= 0 (exact also for p_y ≈ 1).
    """
    # p_y = sigmoid(φ), so −log p_y = softplus(−φ): keeps its relative precision when
    # p_y ≈ 1, where logsumexp(z) − z_y would round to 0.
    phi = logit_scaled_confidence(logits, labels, example_axis=example_axis)
    return np.logaddexp(0.0, -phi)


def correctness(
    logits: np.ndarray, labels: np.ndarray, *, example_axis: int | None = None
) -> np.ndarray:
    """Whether the predicted class (argmax of the logits) equals the label.

    Args:
      logits: [..., C] logits.
      labels: integer labels; see the module docstring for how they are matched.
      example_axis: if given, `labels` is [N] and indexes this axis of logits.shape[:-1].

    Returns:
      bool array of shape logits.shape[:-1].
    """
    z, y = _prepare(logits, labels, example_axis)
    return np.argmax(z, axis=-1) == y

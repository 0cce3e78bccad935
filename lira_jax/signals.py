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
the reference's `log(1 - p_y + 1e-45)` saturates at about 103. The other signals are
derived from the same quantities (`signal_set` computes several at once from one pass of
exponentials): ℓ = softplus(−φ), p_y = sigmoid(φ), and the modified entropy uses
log(1 − p_i) from log1p(−p_i) where p_i ≤ 1/2 and from a masked logsumexp for the one
class that may exceed 1/2, so no term loses its precision when a softmax saturates.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "MENTR_LOG_FLOOR",
    "SIGNAL_NAMES",
    "align_labels",
    "correctness",
    "cross_entropy",
    "label_first_posteriors",
    "label_probability",
    "log_softmax64",
    "logit_scaled_confidence",
    "modified_entropy",
    "signal_set",
    "softmax64",
]

MENTR_LOG_FLOOR = float(np.log(1e-30))
"""Song & Mittal replace log 0 by log 1e-30; every log in the modified entropy is floored here."""

SIGNAL_NAMES = ("phi", "loss", "p_y", "mentr", "probs")
"""Names accepted by `signal_set`."""


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
    return z, _broadcast_labels(labels, z.shape[:-1], z.shape[-1], example_axis)


def _broadcast_labels(
    labels: np.ndarray, batch_shape: tuple[int, ...], num_classes: int, example_axis: int | None
) -> np.ndarray:
    """Validates integer labels in [0, num_classes) and broadcasts them to batch_shape."""
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}.")
    if example_axis is not None:
        labels = align_labels(labels, batch_shape, example_axis)
    try:
        labels = np.broadcast_to(labels, batch_shape)
    except ValueError:
        raise ValueError(
            f"labels.shape={labels.shape} does not broadcast to logits.shape[:-1]={batch_shape}; "
            "pass example_axis=... for [N] labels, or reshape the labels (e.g. labels[:, None])."
        ) from None
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"labels must lie in [0, {num_classes}), got range [{labels.min()}, {labels.max()}]."
        )
    return labels


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


def softmax64(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis in float64 (max-shifted).

    Args:
      logits: [..., C] real array.

    Returns:
      [..., C] float64 probabilities summing to 1.
    """
    return np.exp(log_softmax64(logits))


def label_probability(
    logits: np.ndarray, labels: np.ndarray, *, example_axis: int | None = None
) -> np.ndarray:
    """Softmax probability of the label, p_y = sigmoid(φ), in float64.

    Args:
      logits: [..., C] logits.
      labels: integer labels; see the module docstring for how they are matched.
      example_axis: if given, `labels` is [N] and indexes this axis of logits.shape[:-1].

    Returns:
      p_y of shape logits.shape[:-1], float64 in [0, 1].
    """
    return signal_set(logits, labels, ("p_y",), example_axis=example_axis)["p_y"]


def modified_entropy(
    logits: np.ndarray, labels: np.ndarray, *, example_axis: int | None = None
) -> np.ndarray:
    """Song & Mittal's modified entropy Mentr(p, y), in float64.

    Mentr = −(1 − p_y)·log p_y − Σ_{i≠y} p_i·log(1 − p_i), with every log floored at
    log 1e-30 (`MENTR_LOG_FLOOR`), the published convention for log 0. Lower = more
    confident in the label (members tend to have lower values).

    Args:
      logits: [..., C] logits.
      labels: integer labels; see the module docstring for how they are matched.
      example_axis: if given, `labels` is [N] and indexes this axis of logits.shape[:-1].

    Returns:
      Mentr of shape logits.shape[:-1], float64, >= 0.
    """
    return signal_set(logits, labels, ("mentr",), example_axis=example_axis)["mentr"]


def signal_set(
    logits: np.ndarray,
    labels: np.ndarray,
    names: tuple[str, ...] | list[str] = SIGNAL_NAMES,
    *,
    example_axis: int | None = None,
) -> dict[str, np.ndarray]:
    """Several per-query signals from one pass over the logits (what attack banks store).

    Args:
      logits: [..., C] logits.
      labels: integer labels; see the module docstring for how they are matched.
      names: any of "phi" (φ), "loss" (−log p_y), "p_y", "mentr" (modified entropy),
        "probs" (softmax, [..., C]).
      example_axis: if given, `labels` is [N] and indexes this axis of logits.shape[:-1].

    Returns:
      name -> float64 array of shape logits.shape[:-1] ([..., C] for "probs").

    Raises:
      ValueError: on an unknown name or bad labels.
    """
    unknown = sorted(set(names) - set(SIGNAL_NAMES))
    if unknown:
        raise ValueError(f"Unknown signal name(s) {unknown}; valid: {list(SIGNAL_NAMES)}.")
    # One private float64 copy in class-major layout [C, ...]: reductions over classes
    # become C − 1 elementwise operations on contiguous slabs (several times faster than
    # numpy's reductions along a short last axis), and the rest is done in place, ~6
    # passes over the logits for φ/ℓ/p_y and ~13 with mentr and probs. The bank calls this
    # on cache-sized chunks.
    x = np.asarray(logits)
    if x.ndim < 1 or x.shape[-1] < 2:
        raise ValueError(f"logits must have shape [..., C] with C >= 2, got {x.shape}.")
    num_classes = x.shape[-1]
    y = _broadcast_labels(labels, x.shape[:-1], num_classes, example_axis)
    z = np.empty((num_classes,) + x.shape[:-1])
    z[...] = np.moveaxis(x, -1, 0)
    # One-hot label mask on the labels before broadcasting (e.g. [1, N, 1] for the store).
    y_small = _compact(y)
    is_label = np.arange(num_classes).reshape((-1,) + (1,) * y.ndim) == y_small[None]
    z_y = np.zeros(x.shape[:-1])
    for c in range(num_classes):
        np.copyto(z_y, z[c], where=is_label[c])
    # Shift by the largest non-label logit: the non-label exponentials then sum to >= 1,
    # so φ = z_y − logsumexp_{i≠y} z_i keeps full precision whatever p_y is.
    np.copyto(z, -np.inf, where=is_label)
    m_rest = _reduce(np.maximum, z)
    np.subtract(z, m_rest, out=z)
    np.exp(z, out=z)  # e_rest: 0 at the label, 1 at the largest other class
    s_rest = _reduce(np.add, z)
    zy_shift = z_y - m_rest
    phi = zy_shift - np.log(s_rest)
    # Everything else is a function of φ and ℓ = softplus(−φ): p_y = e^{−ℓ},
    # 1 − p_y = e^{−(ℓ + φ)} and the softmax normaliser is log Σ e^{z − m_rest} = z_y − m_rest + ℓ.
    loss = _softplus(-phi)
    out = {}
    if "phi" in names:
        out["phi"] = phi
    if "loss" in names:
        out["loss"] = loss
    if "p_y" in names or "probs" in names:
        p_y = np.exp(-loss)
        out["p_y"] = p_y
    if "mentr" not in names and "probs" not in names:
        return {k: v for k, v in out.items() if k in names}

    log_norm = zy_shift + loss
    p_rest = np.multiply(z, np.exp(-log_norm), out=z)  # non-label probabilities, 0 at label
    if "mentr" in names:
        out["mentr"] = _mentr(phi, loss, zy_shift, p_rest, log_norm)
    if "probs" in names:
        # The last use of this buffer: fill in the label's probability.
        np.copyto(p_rest, p_y, where=is_label)
        out["probs"] = np.moveaxis(p_rest, 0, -1)
    return {k: v for k, v in out.items() if k in names}


def _softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + e^x) without overflow (faster than np.logaddexp(0, x))."""
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def _reduce(op: np.ufunc, z: np.ndarray) -> np.ndarray:
    """op-reduction over the leading (class) axis by C − 1 elementwise calls."""
    out = z[0].copy()
    for c in range(1, z.shape[0]):
        op(out, z[c], out=out)
    return out


def _compact(y: np.ndarray) -> np.ndarray:
    """A broadcast view -> the smallest array that broadcasts back to it (axes of stride 0
    become length 1)."""
    index = tuple(slice(0, 1) if st == 0 else slice(None) for st in y.strides)
    return y[index]


def _mentr(
    phi: np.ndarray,
    loss: np.ndarray,
    zy_shift: np.ndarray,
    p_rest: np.ndarray,
    log_norm: np.ndarray,
) -> np.ndarray:
    """Modified entropy from the pieces computed in `signal_set` (see `modified_entropy`).

    Args:
      phi: [...] φ.
      loss: [...] −log p_y.
      zy_shift: [...] z_y − max_{i≠y} z_i.
      p_rest: [C, ...] non-label probabilities (0 at the label), class-major; not modified.
      log_norm: [...] log Σ_i exp(z_i − max_{i≠y} z_i).
    """
    floor = MENTR_LOG_FLOOR
    label_term = np.exp(-(loss + phi)) * np.maximum(-loss, floor)  # (1 − p_y)·log p_y
    # log(1 − p_i) = log1p(−p_i) is accurate for p_i <= 1/2, i.e. for every non-label class
    # except possibly the largest one, which is recomputed below when it exceeds 1/2.
    with np.errstate(divide="ignore"):
        terms = np.log1p(np.negative(p_rest))
    np.maximum(terms, floor, out=terms)
    np.multiply(terms, p_rest, out=terms)  # 0 at the label, where p_rest = 0
    rest = _reduce(np.add, terms)
    p_top = _reduce(np.maximum, p_rest)
    big = np.flatnonzero(p_top.ravel() > 0.5)
    if big.size:
        # 1 − p_top = (Σ_{i∉{y,top}} e_i + e^{z_y}) / normaliser (all relative to the
        # largest non-label logit), summed on those rows only to avoid cancellation.
        rows = p_rest.reshape(p_rest.shape[0], -1)[:, big]  # a copy; 0 at the label
        rows[np.argmax(rows, axis=0), np.arange(big.size)] = 0.0
        norm = log_norm.reshape(-1)[big]
        s_others = np.sum(rows, axis=0) * np.exp(norm)  # back to exponentials
        pt = p_top.reshape(-1)[big]
        with np.errstate(divide="ignore"):
            exact = np.logaddexp(np.log(s_others), zy_shift.reshape(-1)[big]) - norm
            rough = np.maximum(np.log1p(-pt), floor)
        rest = rest.reshape(-1).copy()
        rest[big] += pt * (np.maximum(exact, floor) - rough)
        rest = rest.reshape(p_top.shape)
    return -label_term - rest


def label_first_posteriors(
    probs: np.ndarray,
    labels: np.ndarray,
    *,
    num_features: int | None = None,
    example_axis: int | None = None,
) -> np.ndarray:
    """Posterior vectors reordered as [p_y, other probabilities in decreasing order].

    A class-agnostic, bounded-size view of a posterior vector (the features of the
    Shokri attack): the label's probability first, then the largest other ones.

    Args:
      probs: [..., C] probabilities.
      labels: integer labels; see the module docstring for how they are matched.
      num_features: keep the first K = min(num_features, C) entries (default: all C).
      example_axis: if given, `labels` is [N] and indexes this axis of probs.shape[:-1].

    Returns:
      [..., K] array of the dtype of `probs`.
    """
    probs = np.asarray(probs)
    if probs.ndim < 1:
        raise ValueError(f"probs must have shape [..., C], got {probs.shape}.")
    num_classes = probs.shape[-1]
    y = _broadcast_labels(labels, probs.shape[:-1], num_classes, example_axis)
    k = num_classes if num_features is None else min(int(num_features), num_classes)
    if k < 1:
        raise ValueError(f"{num_features=} must be >= 1.")
    is_label = np.arange(num_classes) == y[..., None]
    p_y = np.take_along_axis(probs, y[..., None], axis=-1)
    # Sorting −p with the label at +inf puts the other classes first, largest first.
    rest = -np.sort(np.where(is_label, np.inf, -probs), axis=-1)[..., : k - 1]
    return np.concatenate([p_y, rest.astype(probs.dtype)], axis=-1)

"""The attack interface: per-model signals every attack consumes, and what attacks return.

Design notes: the store's logits [M, N, A, C] are too large to hand to every attack (the
256 models × 50,000 examples × 18 queries × 10 classes case is 9 GB of float32), so they
are reduced ONCE, streamed in chunks of models, to a `SignalBank`:

  * phi [M, N, A] float64 — LiRA's φ per query (1.8 GB for the case above; float64
    because φ of confident models differs from the next value in the 7th+ digit);
  * loss, p_y, mentr [M, N] float64 — cross-entropy, label probability and modified
    entropy, each averaged over the A queries (augmentations);
  * posteriors [M, N, K] float32 — the query-averaged softmax reordered as
    [p_y, largest other probabilities…] and cut to K = min(C, 10) entries (0.5 GB above);
    only the Shokri attack needs them;
  * predicted [M, N, A] int — the predicted label (argmax of the logits) per query: all
    that a target exposing only labels gives, and all the label-only attacks
    (`lira_jax.attacks.label_only`) read (int16 when C fits, 0.5 GB above).

Only the signals that the requested attacks need are computed (`needed_signals`). Peak
memory is the bank plus one block of logits as read (`chunk_elements` values, 2^24 by
default); the arithmetic runs on pieces of 2^19 logits, whose float64 temporaries stay in
the CPU cache. loss and p_y are exact functions of φ, so a
bank built from φ alone (`SignalBank(keep=..., phi=...)`) supports every attack except
Song (needs mentr) and Shokri (needs posteriors).

An attack is fn(bank, targets, **options) -> `AttackOutput` with scores [T, N] for the
targets (model indices); target t is attacked with every other model as a shadow. An
attack that the data cannot support (e.g. an example with no OUT shadow model) raises
`AttackUndefined`, which `evaluate_signals` records as an "undefined" entry.

External targets (models the store did not train, `num_external` > 0): the bank's last
`num_external` rows hold their signals, computed from their outputs on the store's queries.
Their keep rows are filler, all False, and are never read as membership: the truth of
an external target is not in the bank. Such rows are never anyone's shadow, and an external
target's shadows are all the store's models, whatever their membership
(`lira_jax.attacks.shadow_sets`); only external rows can be the targets of such a bank.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from lira_jax import signals

__all__ = [
    "AttackOutput",
    "AttackUndefined",
    "SignalBank",
    "check_external",
    "check_targets",
    "signal_bank_from_logits",
]

MAX_POSTERIOR_FEATURES = 10
_COMPUTE_ELEMENTS = 1 << 19
_BANK_SIGNALS = ("phi", "loss", "p_y", "mentr", "posteriors", "predicted")


class AttackUndefined(ValueError):
    """The data cannot support an attack (too few shadow models, a missing signal, ...)."""


@dataclasses.dataclass(frozen=True)
class AttackOutput:
    """Scores of one attack on T targets.

    Attributes:
      scores: [T, N] float64, higher = more likely a member.
      threshold: None, or the attack's own decision rule "member iff score >= threshold"
        (a scalar, [T, 1] or [T, N]); evaluation then reports that operating point.
      extras: small JSON-serialisable facts to report (e.g. the threshold used).
    """

    scores: np.ndarray
    threshold: Any = None
    extras: dict = dataclasses.field(default_factory=dict)


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


@dataclasses.dataclass(frozen=True, eq=False)
class SignalBank:
    """Per-model signals of every model on every example (see the module docstring).

    Attributes:
      keep: [M, N] bool, whether model m trained on example n.
      phi: [M, N, A] float64 φ, or None.
      loss: [M, N] float64 cross-entropy averaged over queries (derived from phi if None).
      p_y: [M, N] float64 label probability averaged over queries (derived from phi).
      mentr: [M, N] float64 modified entropy averaged over queries, or None.
      posteriors: [M, N, K] float32 label-first posteriors averaged over queries, or None.
      predicted: [M, N, A] int predicted labels (argmax over classes) per query, or None.
      labels: [N] int labels, or None.
      num_external: E, the last E rows are external targets (module docstring); their keep
        rows must be False. 0: every row is a store model.
    """

    keep: np.ndarray
    phi: np.ndarray | None = None
    loss: np.ndarray | None = None
    p_y: np.ndarray | None = None
    mentr: np.ndarray | None = None
    posteriors: np.ndarray | None = None
    predicted: np.ndarray | None = None
    labels: np.ndarray | None = None
    num_external: int = 0
    _cache: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        keep = np.asarray(self.keep)
        if keep.dtype != bool or keep.ndim != 2:
            raise ValueError(f"keep must be a bool [M, N] array, got {keep.dtype} {keep.shape}.")
        object.__setattr__(self, "keep", keep)
        num_models, num_examples = keep.shape
        if num_models < 2:
            raise ValueError(
                f"Need at least 2 models (one target, one shadow), got M={num_models}."
            )
        check_external(keep, self.num_external)
        expected = {
            "phi": 3,
            "loss": 2,
            "p_y": 2,
            "mentr": 2,
            "posteriors": 3,
        }
        for name, ndim in expected.items():
            value = getattr(self, name)
            if value is None:
                continue
            dtype = np.float32 if name == "posteriors" else np.float64
            value = np.asarray(value, dtype=dtype)
            if value.ndim != ndim or value.shape[:2] != keep.shape:
                raise ValueError(
                    f"{name} must have {ndim} dims with leading shape [M, N]={keep.shape}, got "
                    f"{value.shape}."
                )
            if np.isnan(value).any():
                raise ValueError(f"{name} contains NaN; check the stored logits.")
            object.__setattr__(self, name, value)
        if self.predicted is not None:
            predicted = np.asarray(self.predicted)
            if predicted.ndim != 3 or predicted.shape[:2] != keep.shape:
                raise ValueError(
                    f"predicted must be [M, N, A] with [M, N]={keep.shape}, got {predicted.shape}."
                )
            if not np.issubdtype(predicted.dtype, np.integer):
                raise ValueError(f"predicted must hold int labels, got dtype {predicted.dtype}.")
            object.__setattr__(self, "predicted", predicted)
        if self.phi is not None:
            if self.loss is None:
                object.__setattr__(self, "loss", _softplus(-self.phi).mean(axis=-1))
            if self.p_y is None:
                object.__setattr__(self, "p_y", np.exp(-_softplus(-self.phi)).mean(axis=-1))
        if self.labels is not None:
            labels = np.asarray(self.labels)
            if labels.shape != (num_examples,) or not np.issubdtype(labels.dtype, np.integer):
                raise ValueError(
                    f"labels must be an int array of shape [N]=({num_examples},), got "
                    f"{labels.dtype} {labels.shape}."
                )
            object.__setattr__(self, "labels", labels)

    @property
    def num_models(self) -> int:
        return self.keep.shape[0]

    @property
    def num_examples(self) -> int:
        return self.keep.shape[1]

    @property
    def num_store_models(self) -> int:
        """Rows that are store models (all but the `num_external` external targets)."""
        return self.num_models - self.num_external

    @property
    def available(self) -> frozenset[str]:
        """Names of the signals present (plus "labels" when labels are known)."""
        names = {n for n in _BANK_SIGNALS if getattr(self, n) is not None}
        if self.labels is not None:
            names.add("labels")
        return frozenset(names)

    def cached(self, key: tuple, compute: Callable[[], Any]) -> Any:
        """Memoises a derived statistic shared by several attacks (e.g. sorted φ)."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def clear_cache(self) -> None:
        self._cache.clear()

    def check_targets(self, targets: Iterable[int] | np.ndarray) -> np.ndarray:
        """Validates target model indices; returns them as an int64 [T] array."""
        return check_targets(targets, self.num_models, self.num_external)

    def require(self, names: Iterable[str], attack: str) -> None:
        """Raises ValueError naming the signals `attack` needs but the bank lacks."""
        missing = sorted(set(names) - self.available)
        if missing:
            raise ValueError(
                f"Attack {attack!r} needs signal(s) {missing}, which this SignalBank lacks "
                f"(has {sorted(self.available)}); build it with `signal_bank_from_logits` "
                "(with labels) to get them."
            )


def check_external(keep: np.ndarray, num_external: int) -> None:
    """Validates `num_external` of a bank with membership `keep` [M, N] (module docstring)."""
    num_models = keep.shape[0]
    if isinstance(num_external, bool) or not isinstance(num_external, int | np.integer):
        raise ValueError(f"num_external={num_external!r} must be an int.")
    if not 0 <= num_external <= num_models - 2:
        raise ValueError(
            f"num_external={num_external} must leave at least 2 store models of M={num_models}."
        )
    if num_external and keep[num_models - num_external :].any():
        raise ValueError(
            "The keep rows of external targets are filler and must be all False (their "
            "membership is not the bank's to know); pass the truth to the evaluation instead."
        )


def check_targets(targets, num_models: int, num_external: int = 0) -> np.ndarray:
    """Validates target model indices of a bank; returns them as an int64 [T] array.

    With external targets (`num_external` > 0) only the external rows may be targets."""
    targets = np.asarray(targets, dtype=np.int64).reshape(-1)
    if targets.size == 0 or targets.min() < 0 or targets.max() >= num_models:
        raise ValueError(
            f"targets must be model indices in [0, {num_models}), got {targets.tolist()[:8]}."
        )
    first = num_models - num_external
    if num_external and targets.min() < first:
        raise ValueError(
            f"This bank holds {num_external} external target(s) in rows [{first}, {num_models}); "
            f"targets {targets[targets < first].tolist()[:8]} are store models, which are "
            "attacked leave-one-out in a bank without external rows."
        )
    return targets


def signal_bank_from_logits(
    logits: Any,
    labels: np.ndarray,
    keep: np.ndarray,
    *,
    signal_names: Iterable[str] = _BANK_SIGNALS,
    max_posterior_features: int = MAX_POSTERIOR_FEATURES,
    chunk_elements: int = 1 << 24,
    num_external: int = 0,
    log: Callable[[str], None] | None = None,
) -> SignalBank:
    """Reduces logits to a `SignalBank`, streaming chunks of models.

    Args:
      logits: [M, N, A, C] logits; any array-like whose `logits[m0:m1]` reads a block of
        models (numpy array, memmap, zarr/tensorstore array).
      labels: [N] int labels.
      keep: [M, N] bool membership.
      signal_names: which of "phi", "loss", "p_y", "mentr", "posteriors", "predicted" to
        compute (loss and p_y are always computed: they are small).
      max_posterior_features: K, the number of label-first posterior entries kept.
      chunk_elements: about how many logit values are processed at once.
      num_external: the last rows that are external targets (module docstring).
      log: optional progress callback.

    Returns:
      The `SignalBank`.

    Raises:
      ValueError: on NaN/inf logits (naming the models), or bad shapes/labels.
    """
    shape = tuple(logits.shape)
    if len(shape) != 4:
        raise ValueError(f"logits must be [M, N, A, C], got shape {shape}.")
    num_models, num_examples, num_queries, num_classes = shape
    keep = np.asarray(keep)
    if keep.shape != (num_models, num_examples):
        raise ValueError(f"keep.shape={keep.shape} must be [M, N]={(num_models, num_examples)}.")
    labels = np.asarray(labels)
    if labels.shape != (num_examples,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"labels must be an int array of shape [N]=({num_examples},), got {labels.dtype} "
            f"{labels.shape}."
        )
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"labels must lie in [0, {num_classes}), got range [{labels.min()}, {labels.max()}]."
        )
    wanted = set(signal_names) | {"loss", "p_y"}
    unknown = sorted(wanted - set(_BANK_SIGNALS))
    if unknown:
        raise ValueError(f"Unknown signal name(s) {unknown}; valid: {list(_BANK_SIGNALS)}.")
    per_query = ["phi", "loss", "p_y"] + (["mentr"] if "mentr" in wanted else [])
    if "posteriors" in wanted:
        per_query.append("probs")
    k = min(max_posterior_features, num_classes)

    out = {name: np.empty((num_models, num_examples)) for name in ("loss", "p_y")}
    if "phi" in wanted:
        out["phi"] = np.empty((num_models, num_examples, num_queries))
    if "mentr" in wanted:
        out["mentr"] = np.empty((num_models, num_examples))
    if "posteriors" in wanted:
        out["posteriors"] = np.empty((num_models, num_examples, k), dtype=np.float32)
    if "predicted" in wanted:
        dtype = np.int16 if num_classes <= np.iinfo(np.int16).max else np.int32
        out["predicted"] = np.empty((num_models, num_examples, num_queries), dtype=dtype)

    step = max(1, chunk_elements // max(1, num_examples * num_queries * num_classes))
    bad_models = []
    for m0 in range(0, num_models, step):
        m1 = min(num_models, m0 + step)
        block = np.asarray(logits[m0:m1])
        finite = np.isfinite(block).reshape(m1 - m0, -1).all(axis=1)
        if not finite.all():
            bad_models.extend((m0 + np.flatnonzero(~finite)).tolist())
            continue
        if "predicted" in out:
            out["predicted"][m0:m1] = block.argmax(axis=-1)
        # Compute on cache-sized pieces (several times faster than whole blocks).
        step_n = max(1, _COMPUTE_ELEMENTS // max(1, (m1 - m0) * num_queries * num_classes))
        for n0 in range(0, num_examples, step_n):
            n1 = min(num_examples, n0 + step_n)
            values = signals.signal_set(block[:, n0:n1], labels[n0:n1], per_query, example_axis=1)
            if "phi" in out:
                out["phi"][m0:m1, n0:n1] = values["phi"]
            for name in ("loss", "p_y", "mentr"):
                if name in out:
                    out[name][m0:m1, n0:n1] = values[name].mean(axis=-1)
            if "posteriors" in out:
                out["posteriors"][m0:m1, n0:n1] = signals.label_first_posteriors(
                    values["probs"].mean(axis=2), labels[n0:n1], num_features=k, example_axis=1
                )
        if log is not None:
            log(f"signals: models {m1}/{num_models}")
    if bad_models:
        raise ValueError(
            f"logits contain NaN/inf for model(s) {bad_models[:10]}"
            f"{' ...' if len(bad_models) > 10 else ''}: those models diverged. Retrain them "
            "(e.g. with a lower --learning_rate) before attacking."
        )
    return SignalBank(keep=keep, labels=labels, num_external=num_external, **out)

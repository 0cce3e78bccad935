"""Auditing a target that lira_jax did not train: its outputs against the store's shadows.

    outputs = ...  # the target's outputs [N, A, C] on `experiments.export_queries`'s inputs
    audit = external.audit_target(store, outputs, target_format="probs", target_keep=keep)

The second evaluation protocol (ARCHITECTURE.md, "Auditing a target from outside"). The
target enters as outputs, not code: a user runs the exported queries (the exact inputs the
store's shadows were queried with, in store order) through the model in any framework and
hands back its outputs. They become the same signals (φ, loss, correctness, ...) as the
store's logits (`target_logits` converts probabilities and log-probabilities), in an extra
row of a `SignalBank` marked external (`lira_jax.attacks.bank`, `num_external`). Every
registered attack then runs in its "target against shadows" form: the target is not one of
the store's models, so all M shadows serve every example, whatever their membership, and
nothing of leave-one-out or of the equal-size shadow sets is needed
(`lira_jax.attacks.shadow_sets`). The attacks' scores never depend on the target's true
membership (`target_keep`): it only evaluates them. RMIA's population is every example
(`population="all"`; the target's non-members are what the audit asks about).

Inputs (`check_target_outputs`):
  * outputs: [N, A, C] float, N examples in store order, A queries in the store's order
    (`query_names`), C classes, as "logits" (any real scores whose softmax is the model's
    posterior), "probs" (rows in [0, 1] summing to 1) or "log_probs" (log of those). With
    exposure "labels" also [N, A] integer predicted labels. No NaN or inf.
  * target_keep: [N] bool, the target's true membership (known when auditing one's own
    model), or None (then there is no ROC: the scores and their ranking only).

A target trained with another recipe than the shadows (longer, without augmentation, ...)
has members that the shadows' IN distribution does not describe, which weakens every
attack that models the IN side (online LiRA above all). `recipe_check` compares the
target's identity-query accuracy on members and non-members (without keep: on the whole
pool) with the shadows' and warns when they differ by more than `RECIPE_TOLERANCE`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from lira_jax import metrics
from lira_jax import store as store_lib
from lira_jax.attacks.bank import SignalBank, signal_bank_from_logits
from lira_jax.attacks.evaluate import (
    ATTACKS,
    EXPOSURES,
    Attack,
    _checked_names,
    _run_attacks,
    resolve_attacks,
)

__all__ = [
    "RECIPE_TOLERANCE",
    "TARGET_FORMATS",
    "ExternalAudit",
    "audit_target",
    "check_target_keep",
    "check_target_outputs",
    "external_bank",
    "recipe_check",
    "target_logits",
]

TARGET_FORMATS = ("logits", "probs", "log_probs")
RECIPE_TOLERANCE = 0.05  # accuracy difference (absolute) that triggers the recipe warning
_SUM_TOLERANCE = 1e-3  # |row sum − 1| within which a row counts as probabilities
_QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)


class TargetOutputError(ValueError):
    """The target's outputs or membership do not fit the store; the message says why."""


def check_target_outputs(
    outputs: np.ndarray, shape: tuple[int, int, int], target_format: str, exposure: str
) -> np.ndarray:
    """Validates the target's outputs against the store's [N, A, C] (module docstring).

    Returns:
      The outputs as an array: float64 [N, A, C], or int64 [N, A] predicted labels (exposure
      "labels" only).

    Raises:
      TargetOutputError: wrong N / A / C (each named), NaN or inf (counted, the first
        located), probabilities passed as logits (rows that sum to 1: name
        --target_format=probs), values that do not fit the format given, labels out of range.
    """
    if target_format not in TARGET_FORMATS:
        raise TargetOutputError(f"target_format={target_format!r} must be one of {TARGET_FORMATS}.")
    if exposure not in EXPOSURES:
        raise TargetOutputError(f"exposure={exposure!r} must be one of {EXPOSURES}.")
    n, a, c = shape
    outputs = np.asarray(outputs)
    if outputs.ndim == 2 and np.issubdtype(outputs.dtype, np.integer):
        if exposure != "labels":
            raise TargetOutputError(
                f"The target outputs are integer labels [N, A] = {outputs.shape}; score-based "
                "attacks need [N, A, C] scores. Pass --exposure=labels to run the label-only "
                "attacks on predicted labels."
            )
        _check_dims(outputs.shape + (c,), (n, a, c))
        if outputs.min() < 0 or outputs.max() >= c:
            raise TargetOutputError(
                f"The target's predicted labels lie in [{outputs.min()}, {outputs.max()}]; "
                f"they must be class indices in [0, {c})."
            )
        return outputs.astype(np.int64)
    if outputs.ndim != 3:
        raise TargetOutputError(
            f"The target outputs have shape {outputs.shape}; they must be [N, A, C] = "
            f"[{n}, {a}, {c}]: one row of class scores per exported example and query."
        )
    if not np.issubdtype(outputs.dtype, np.floating):
        raise TargetOutputError(
            f"The target outputs have dtype {outputs.dtype}; class scores must be floats."
        )
    _check_dims(outputs.shape, (n, a, c))
    finite = np.isfinite(outputs)
    if not finite.all():
        bad = tuple(int(i) for i in np.argwhere(~finite)[0])
        raise TargetOutputError(
            f"The target outputs hold {int((~finite).sum())} NaN or infinite value(s), the first "
            f"at [example, query, class] = {bad}; a model's outputs must be finite (for "
            "probabilities with zeros use --target_format=probs, not log-probabilities of 0)."
        )
    values = outputs.astype(np.float64)
    sums = values.sum(-1)
    looks_like_probs = (
        values.min() >= 0 and values.max() <= 1 and np.all(np.abs(sums - 1) <= _SUM_TOLERANCE)
    )
    if target_format == "logits" and looks_like_probs:
        raise TargetOutputError(
            "Every row of the target outputs lies in [0, 1] and sums to 1: these are "
            "probabilities, not logits (softmax would flatten them). Pass "
            "--target_format=probs (or log_probs for their logarithms)."
        )
    if target_format == "probs" and not looks_like_probs:
        off = int(np.sum(np.abs(sums - 1) > _SUM_TOLERANCE))
        raise TargetOutputError(
            f"--target_format=probs, but the outputs lie in [{values.min():.3g}, "
            f"{values.max():.3g}] and {off} of {sums.size} rows do not sum to 1 (±"
            f"{_SUM_TOLERANCE:g}): pass --target_format=logits for raw scores."
        )
    if target_format == "log_probs":
        lse = np.logaddexp.reduce(values, axis=-1)
        off = int(np.sum(np.abs(np.expm1(lse)) > _SUM_TOLERANCE))
        if values.max() > _SUM_TOLERANCE or off:
            raise TargetOutputError(
                f"--target_format=log_probs, but {off} of {lse.size} rows do not exponentiate "
                "to probabilities summing to 1: pass --target_format=logits for raw scores."
            )
    return values


def _check_dims(got: tuple[int, ...], want: tuple[int, int, int]) -> None:
    names = ("N (examples)", "A (queries)", "C (classes)")
    wrong = [
        f"{name} is {g}, the store has {w}"
        for name, g, w in zip(names, got, want, strict=True)
        if g != w
    ]
    if wrong:
        raise TargetOutputError(
            f"The target outputs have shape {tuple(got)}, the store's queries are "
            f"[N, A, C] = {list(want)}: {'; '.join(wrong)}. Compute them on the inputs "
            "`experiments.export_queries` wrote for this store, in their order."
        )


def check_target_keep(target_keep, num_examples: int) -> np.ndarray:
    """The target's true membership as bool [N] (bool, or integers 0/1).

    Raises:
      TargetOutputError: wrong length or rank, values other than 0/1, or only members /
        only non-members (the ROC needs both).
    """
    keep = np.asarray(target_keep)
    if keep.ndim != 1 or keep.shape[0] != num_examples:
        raise TargetOutputError(
            f"target_keep has shape {keep.shape}; it must be [N] = [{num_examples}], one "
            "membership flag per exported example, in store order."
        )
    if keep.dtype != bool:
        if not np.issubdtype(keep.dtype, np.number) or not np.isin(keep, (0, 1)).all():
            raise TargetOutputError(
                f"target_keep has dtype {keep.dtype} with values other than 0/1; it must be "
                "bool (True: the example was in the target's training set)."
            )
        keep = keep.astype(bool)
    members = int(keep.sum())
    if members in (0, num_examples):
        raise TargetOutputError(
            f"target_keep marks {members} of {num_examples} examples as members: the ROC needs "
            "members and non-members. Audit without target_keep to get the scores' ranking."
        )
    return keep


def target_logits(outputs: np.ndarray, target_format: str) -> np.ndarray:
    """Validated outputs [N, A, C] as logits (float64): probabilities become their logs
    (floored at 1e-300), whose softmax is the same posterior; logits and log-probabilities
    are used as they are."""
    if target_format == "probs":
        return np.log(np.maximum(outputs, 1e-300))
    return np.asarray(outputs, np.float64)


class _Stacked:
    """The store's lazy logits [M, N, A, C] with the target's rows appended: [M + 1, ...]."""

    def __init__(self, store_logits, extra: np.ndarray):
        self._store, self._extra = store_logits, extra
        m = store_logits.shape[0]
        self.shape = (m + extra.shape[0], *store_logits.shape[1:])
        self.ndim = 4
        self._m = m

    def __getitem__(self, index):
        if not isinstance(index, slice):
            raise TypeError("only slices of models are read")
        start, stop, _ = index.indices(self.shape[0])
        parts = []
        if start < self._m:
            parts.append(np.asarray(self._store[start : min(stop, self._m)], np.float64))
        if stop > self._m:
            parts.append(self._extra[max(start, self._m) - self._m : stop - self._m])
        return np.concatenate(parts) if len(parts) > 1 else parts[0]


def external_bank(
    store_logits,
    labels: np.ndarray,
    keep: np.ndarray,
    target: np.ndarray,
    signal_names: Sequence[str],
    *,
    exposure: str = "logits",
    log: Callable[[str], None] | None = None,
) -> SignalBank:
    """The store's models plus one external target, as a `SignalBank` (row M: the target).

    Args:
      store_logits: [M, N, A, C] the store's logits (array or lazy array of model slices).
      labels: [N] true labels.
      keep: [M, N] the store's membership.
      target: the validated outputs (`check_target_outputs`): logits [N, A, C]
        (`target_logits`), or predicted labels [N, A] (exposure "labels").
      signal_names: the signals the attacks need.
      exposure: "logits", or "labels": only predicted labels enter the bank.
      log: progress callback.
    """
    from lira_jax.attacks.label_only import predicted_labels

    keep = np.concatenate([np.asarray(keep, bool), np.zeros((1, keep.shape[1]), bool)])
    if exposure == "labels":
        store_predicted = predicted_labels(store_logits)
        own = target if target.ndim == 2 else target.argmax(-1)
        predicted = np.concatenate([store_predicted, own[None].astype(store_predicted.dtype)])
        return SignalBank(keep=keep, predicted=predicted, labels=labels, num_external=1)
    if target.ndim != 3:
        raise TargetOutputError("Score-based attacks need the target's [N, A, C] outputs.")
    stacked = _Stacked(store_logits, target[None])
    wanted = set(signal_names) - {"labels"}
    return signal_bank_from_logits(
        stacked, labels, keep, signal_names=wanted, num_external=1, log=log
    )


def recipe_check(
    target_correct: np.ndarray,
    target_keep: np.ndarray | None,
    shadow_in: float,
    shadow_out: float,
    shadow_all: float,
    tolerance: float = RECIPE_TOLERANCE,
) -> dict:
    """Compares the target's identity-query accuracy with the shadows' (module docstring).

    Args:
      target_correct: [N] bool, the target labels example n correctly (identity query).
      target_keep: [N] bool membership, or None.
      shadow_in, shadow_out, shadow_all: the shadows' mean accuracy on their members, on
        their non-members and on the whole pool.
      tolerance: the largest absolute difference that is not reported.

    Returns:
      {"target": {...}, "shadows": {...}, "differences": {...}, "mismatch": bool,
      "warning": str or None}; with keep the accuracies are on members ("in") and
      non-members ("out"), without keep on the whole pool ("all").
    """
    target_correct = np.asarray(target_correct, bool)
    shadows = {"in": shadow_in, "out": shadow_out, "all": shadow_all}
    if target_keep is None:
        target = {"all": float(target_correct.mean())}
    else:
        target = {
            "in": float(target_correct[target_keep].mean()),
            "out": float(target_correct[~target_keep].mean()),
            "all": float(target_correct.mean()),
        }
    target = {k: round(v, 4) for k, v in target.items()}
    shadows = {k: round(float(v), 4) for k, v in shadows.items()}
    keys = ("in", "out") if target_keep is not None else ("all",)
    diff = {k: round(target[k] - shadows[k], 4) for k in keys}
    mismatch = any(abs(v) > tolerance for v in diff.values())
    warning = None
    if mismatch:
        what = (
            f"members {target['in']:.3f} and non-members {target['out']:.3f}, against the "
            f"shadows' {shadows['in']:.3f} and {shadows['out']:.3f}"
            if target_keep is not None
            else f"the pool {target['all']:.3f}, against the shadows' {shadows['all']:.3f}"
        )
        warning = (
            f"Recipe mismatch: the target's accuracy on {what} (identity query) differs by more "
            f"than {tolerance:g}. Its training recipe (epochs, augmentation, regularisation, "
            "architecture) is not the shadows', so their IN distribution does not describe its "
            "members and attacks that model the IN side (online LiRA, RMIA online) are weakened. "
            "Prefer lira_offline / lira_offline_fixed_variance, or train the shadows to the "
            "target's recipe and audit again."
        )
    return {
        "target": target,
        "shadows": shadows,
        "differences": diff,
        "tolerance": tolerance,
        "mismatch": bool(mismatch),
        "warning": warning,
    }


@dataclasses.dataclass(frozen=True)
class ExternalAudit:
    """What `audit_target` found.

    Attributes:
      results: {attack: entry}: with keep, the metrics of `evaluate_signals` entries (AUC,
        TPR at FPR, intervals, operating point); without, "num_examples", "score_quantiles"
        and "details". Undefined attacks: {"undefined": True, "reason"}.
      curves: {attack: (fpr, tpr)} with keep, else empty.
      scores: {attack: [N] float64} of every defined attack (higher = more likely member).
      recipe: `recipe_check`'s report.
      target_keep: the membership used, or None.
    """

    results: dict
    curves: dict
    scores: dict
    recipe: dict
    target_keep: np.ndarray | None


def _shadow_accuracies(store, predicted_identity: Callable[[int, int], np.ndarray]):
    """The shadows' mean identity-query accuracy on members, non-members and the pool:
    from the block records (train / out accuracy per model) where they have them, else
    recomputed from the logits."""
    keep = store.keep()
    counts_in, counts_out = keep.sum(1), (~keep).sum(1)
    acc_in = np.full(store.num_models, np.nan)
    acc_out = np.full(store.num_models, np.nan)
    for r in store.records():
        extra = r.get("extra", {})
        if "train_accuracy" in extra and "out_accuracy" in extra:
            acc_in[r["start"] : r["stop"]] = extra["train_accuracy"]
            acc_out[r["start"] : r["stop"]] = extra["out_accuracy"]
    labels = store.labels()
    for m in np.flatnonzero(np.isnan(acc_in) | np.isnan(acc_out)):
        correct = predicted_identity(int(m), int(m) + 1)[0] == labels
        acc_in[m] = correct[keep[m]].mean() if keep[m].any() else 0.0
        acc_out[m] = correct[~keep[m]].mean() if (~keep[m]).any() else 0.0
    acc_all = (acc_in * counts_in + acc_out * counts_out) / keep.shape[1]
    return float(acc_in.mean()), float(acc_out.mean()), float(acc_all.mean())


def audit_target(
    store,
    outputs: np.ndarray,
    *,
    target_format: str = "logits",
    target_keep: np.ndarray | None = None,
    attacks: str | Sequence[str] = "all",
    exposure: str = "logits",
    num_bootstrap: int = 0,
    seed: int = 0,
    fpr_levels: Sequence[float] = metrics.FPR_LEVELS,
    attack_options: Mapping[str, Mapping] | None = None,
    registry: Mapping[str, Attack] | None = None,
    recipe_tolerance: float = RECIPE_TOLERANCE,
    log: Callable[[str], None] | None = None,
) -> ExternalAudit:
    """Every requested attack on an external target, against all of the store's shadows.

    Args:
      store: a complete `lira_jax.store.LogitStore` (only read).
      outputs: the target's outputs on the exported queries (module docstring).
      target_format: "logits", "probs" or "log_probs".
      target_keep: [N] bool true membership of the target, or None.
      attacks: "all" (every registered attack the exposure allows) or names.
      exposure: "logits", or "labels" (attacks that need scores are reported undefined).
      num_bootstrap: bootstrap resamples of the examples for the intervals (with keep).
      seed: the attacks' and the bootstrap's seed.
      fpr_levels: FPR levels of the TPR metrics.
      attack_options: {attack: keyword arguments}; RMIA's population defaults to "all".
      registry: the attacks to choose from (default `ATTACKS`).
      recipe_tolerance: see `recipe_check`.
      log: progress callback.

    Returns:
      An `ExternalAudit`.

    Raises:
      TargetOutputError: outputs or keep that do not fit the store (see the checks).
      ValueError: unknown attacks or options.
    """
    registry = ATTACKS if registry is None else registry
    n, a, c = store.num_examples, store.num_queries, store.num_classes
    target = check_target_outputs(outputs, (n, a, c), target_format, exposure)
    if target.ndim == 3:
        target = target_logits(target, target_format)
    keep = None if target_keep is None else check_target_keep(target_keep, n)
    options = {name: dict(v) for name, v in (attack_options or {}).items()}
    # Signals of every requested attack, resolved before the bank exists.
    wanted = resolve_attacks(attacks, None, registry)
    needs = {s for name in wanted for s in registry[name].needs}
    bank = external_bank(
        store_lib.LazyLogits(store),
        store.labels(),
        store.keep(),
        target,
        needs,
        exposure=exposure,
        log=log,
    )
    names, registry = _checked_names(bank, wanted, exposure, registry, options)
    for name in names:
        if name.startswith("rmia"):
            options.setdefault(name, {}).setdefault("population", "all")
    results, curves, scores = _run_attacks(
        bank,
        names,
        np.array([bank.num_models - 1]),
        None if keep is None else keep[None],
        registry=registry,
        masks={},
        per_target_groups=False,
        settings=dict(fpr_levels=fpr_levels, num_bootstrap=num_bootstrap, seed=seed, level=0.95),
        options=options,
        masked=exposure == "labels",
        log=log,
    )
    flat = {name: s[0] for name, s in scores.items()}
    if keep is None:
        for name, s in flat.items():
            results[name]["score_quantiles"] = {
                f"{q:g}": float(v)
                for q, v in zip(_QUANTILES, np.quantile(s, _QUANTILES), strict=True)
            }
    identity = target[:, 0] if target.ndim == 2 else target[:, 0].argmax(-1)
    shadow_in, shadow_out, shadow_all = _shadow_accuracies(
        store, lambda m0, m1: store.read_logits(models=slice(m0, m1))[:, :, 0].argmax(-1)
    )
    recipe = recipe_check(
        identity == store.labels(), keep, shadow_in, shadow_out, shadow_all, recipe_tolerance
    )
    if recipe["warning"] and log is not None:
        log(recipe["warning"])
    return ExternalAudit(results, curves, flat, recipe, keep)

"""Leave-one-model-out evaluation of every attack, with bootstrap intervals and groups.

Each of the first `num_targets` models is in turn the target and all other models are its
shadows; the target's keep row is the ground truth. Scores and truths are pooled over
targets before computing the ROC (the LiRA protocol). Entry points, from the rawest input:

  * `evaluate_logits(logits, labels, keep, names, num_targets, ...)` — store arrays; the
    logits are reduced once, in chunks of models, to the signals the attacks need;
  * `evaluate_signals(bank, names, num_targets, ...)` — a prepared `SignalBank`;
  * `evaluate_attacks(phi, keep, names, num_targets, ...)` — φ only (every attack but
    Song and Shokri, which need full posteriors).

Results: results[name] = `metrics.summarize` of the pooled scores plus "num_targets",
"num_examples" and "seconds"; with num_bootstrap > 0 a "ci" entry (examples are the
resampling units, so the T scores of an example move together; the same seed gives every
attack the same resamples); for attacks with their own decision rule (Yeom's mean training
loss, Sablayrolles' τ_z, Song's class thresholds, Shokri's P(IN) ≥ ½) an
"operating_point" {"tpr", "fpr", "balanced_accuracy"[, "ci"]}; attack facts under
"details"; and, when groups are given, "groups": {"all": the top-level metrics again,
name: the same metrics restricted to the examples of that group (members and
non-members of the group, pooled over targets)}. An attack the data cannot support is
reported as {"undefined": True, "reason": ...} instead of a number.

Exposure: what the target returns. `exposure="logits"` (scores) lets every attack run;
`exposure="labels"` (a target that returns only its predicted label, i.e. confidence
masking) reduces the logits to predicted labels before any attack sees them, and every
attack that needs scores is reported undefined with the reason `NEEDS_SCORES` — not an
error and not dropped — while the label-only attacks run as usual.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

from lira_jax import metrics
from lira_jax.attacks import label_only
from lira_jax.attacks.bank import AttackOutput, AttackUndefined, SignalBank, signal_bank_from_logits
from lira_jax.attacks.lira import global_threshold_attack, lira_attack
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
    "evaluate_attacks",
    "evaluate_logits",
    "evaluate_signals",
    "exposed_bank",
    "label_exposure",
    "needed_signals",
    "needs_scores",
    "resolve_attacks",
]

EXPOSURES = ("logits", "labels")
NEEDS_SCORES = "needs scores; the target exposes labels only"
_LABEL_SIGNALS = frozenset({"predicted", "labels"})

AttackFn = Callable[..., AttackOutput]
"""fn(bank: SignalBank, targets: [T] int, *, seed: int, **options) -> AttackOutput (scores
[T, N]). `seed` (the evaluation's seed) chooses the equal-size shadow sets
(`shadow_sets`) and any other randomness; an attack that needs none takes it and ignores it.
Every attack that fits statistics or models on shadow models must give each (target,
example) IN and OUT shadow sets whose sizes do not depend on the target's membership of
that example: `tests/test_null_calibration.py` checks every registered attack."""


@dataclasses.dataclass(frozen=True)
class Attack:
    """A registry entry: the function, the bank signals it needs, and a one-line summary."""

    fn: AttackFn
    needs: tuple[str, ...]
    description: str


ATTACKS: dict[str, Attack] = {
    "lira_online": Attack(
        functools.partial(lira_attack, online=True, fix_variance=False),
        ("phi",),
        "LiRA online, per-example σ (Carlini et al. 2022)",
    ),
    "lira_online_fixed_variance": Attack(
        functools.partial(lira_attack, online=True, fix_variance=True),
        ("phi",),
        "LiRA online, global σ",
    ),
    "lira_offline": Attack(
        functools.partial(lira_attack, online=False, fix_variance=False),
        ("phi",),
        "LiRA offline, per-example σ",
    ),
    "lira_offline_fixed_variance": Attack(
        functools.partial(lira_attack, online=False, fix_variance=True),
        ("phi",),
        "LiRA offline, global σ",
    ),
    "global_threshold": Attack(global_threshold_attack, ("phi",), "φ of the target"),
    "yeom": Attack(yeom_attack, ("loss",), "loss threshold (Yeom et al. 2018)"),
    "sablayrolles": Attack(
        sablayrolles_attack, ("loss",), "per-example calibrated loss (Sablayrolles et al. 2019)"
    ),
    "reference": Attack(
        reference_attack, ("loss",), "loss percentile among OUT reference models (Ye et al. 2022)"
    ),
    "rmia_online": Attack(
        functools.partial(rmia_attack, online=True),
        ("p_y",),
        "RMIA, all reference models (Zarifzadeh et al. 2024)",
    ),
    "rmia_offline": Attack(
        functools.partial(rmia_attack, online=False),
        ("p_y",),
        "RMIA offline, OUT reference models, a = 0.3 (or 'auto')",
    ),
    "song": Attack(
        song_attack, ("mentr", "labels"), "modified entropy, class thresholds (Song & Mittal 2021)"
    ),
    "shokri": Attack(
        shokri_attack, ("posteriors", "labels"), "per-class attack MLPs (Shokri et al. 2017)"
    ),
    # Label-only: read only the predicted labels (see lira_jax.attacks.label_only).
    "label_only_gap": Attack(
        label_only.gap_attack, ("predicted", "labels"), "label-only: correct on the identity"
    ),
    "label_only_augmentation_count": Attack(
        label_only.augmentation_count_attack,
        ("predicted", "labels"),
        "label-only: correct queries counted (Choquette-Choo et al. 2021)",
    ),
    "label_only_augmentation_model": Attack(
        label_only.augmentation_model_attack,
        ("predicted", "labels"),
        "label-only: attack MLP on the correctness vector (Choquette-Choo et al. 2021)",
    ),
    "label_only_augmentation_lira": Attack(
        label_only.augmentation_lira_attack,
        ("predicted", "labels"),
        "label-only LiRA: per-query correctness likelihood ratios, Beta prior",
    ),
}


def needs_scores(attack: Attack) -> bool:
    """Whether an attack reads anything beyond predicted labels (so a target that exposes
    only labels cannot be attacked with it)."""
    return not set(attack.needs) <= _LABEL_SIGNALS


def label_exposure(
    results: Mapping[str, dict], registry: Mapping[str, Attack] | None = None
) -> dict[str, dict]:
    """The results a labels-only target gives, from results computed with its logits.

    Entries of attacks that need scores become undefined with the reason `NEEDS_SCORES`;
    label-only entries are kept as they are: those attacks read only the argmax of the
    logits, so their scores under either exposure are identical.

    Args:
      results: {name: entry} of `evaluate_signals` (exposure "logits").
      registry: where the names are looked up (default `ATTACKS`); names not in it are
        taken to be label-only (e.g. the boundary and transfer attacks).
    """
    registry = ATTACKS if registry is None else registry
    out = {}
    for name, res in results.items():
        if name in registry and needs_scores(registry[name]):
            keep = ("num_targets", "num_examples")
            out[name] = {"undefined": True, "reason": NEEDS_SCORES, **{k: res[k] for k in keep}}
        else:
            out[name] = res
    return out


def resolve_attacks(
    names: str | Sequence[str],
    available: Iterable[str] | None = None,
    registry: Mapping[str, Attack] | None = None,
) -> list[str]:
    """Expands and validates attack names.

    Args:
      names: "all", one name, a comma-separated string of names, or a sequence of names.
      available: signals the data provides (e.g. `SignalBank.available`); None = all.
        "all" then selects only the attacks these signals support.
      registry: the attacks to choose from (default `ATTACKS`).

    Returns:
      The attack names in the order given ("all": the order of `ATTACKS`), without repeats.

    Raises:
      ValueError: if a name is unknown, an explicitly named attack needs a signal that is
        not available, or nothing is selected.
    """
    registry = ATTACKS if registry is None else registry
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    names = list(names)
    unknown = [n for n in names if n != "all" and n not in registry]
    if unknown:
        raise ValueError(f"Unknown attack(s) {unknown}; valid names: {['all', *registry]}.")
    if not names:
        raise ValueError(f"No attack selected; valid names: {['all', *registry]}.")
    have = None if available is None else set(available)
    selected = []
    for n in names:
        if n == "all":
            selected.extend(
                a for a, spec in registry.items() if have is None or set(spec.needs) <= have
            )
            continue
        missing = [] if have is None else sorted(set(registry[n].needs) - have)
        if missing:
            raise ValueError(
                f"Attack {n!r} needs {missing}, which the data lacks (have {sorted(have)}); "
                "evaluate from logits with labels (evaluate_logits) to run it."
            )
        selected.append(n)
    if not selected:
        raise ValueError(f"No attack in {names} is supported by the signals {sorted(have)}.")
    return list(dict.fromkeys(selected))


def needed_signals(names: str | Sequence[str]) -> set[str]:
    """The `SignalBank` signals the given attacks need (labels excluded)."""
    return {s for n in resolve_attacks(names) for s in ATTACKS[n].needs} - {"labels"}


def _group_masks(
    groups: np.ndarray | None,
    group_names: Sequence[str] | Mapping[int, str] | None,
    num_examples: int,
    num_targets: int,
) -> dict[str, np.ndarray]:
    """name -> [T, N] bool mask of the group's (target, example) pairs (empty dict without
    groups); groups of shape [N] apply to every target alike."""
    if groups is None:
        if group_names is not None:
            raise ValueError(
                "group_names were given but groups is None: pass the [N] int group of every "
                "example (e.g. the store's `groups` array), or drop group_names."
            )
        return {}
    groups = np.asarray(groups)
    shapes = ((num_examples,), (num_targets, num_examples))
    if groups.shape not in shapes or not np.issubdtype(groups.dtype, np.integer):
        raise ValueError(
            f"groups must be an int array of shape [N]=({num_examples},) or, per target, "
            f"[T, N]=({num_targets}, {num_examples}); got {groups.dtype} {groups.shape}."
        )
    groups = np.broadcast_to(groups, shapes[1])
    if group_names is None:
        names = {int(g): f"group_{int(g)}" for g in np.unique(groups)}
    elif isinstance(group_names, Mapping):
        names = {int(g): str(name) for g, name in group_names.items()}
    else:
        names = {i: str(name) for i, name in enumerate(group_names)}
    unnamed = sorted(set(np.unique(groups).tolist()) - set(names))
    if unnamed:
        raise ValueError(
            f"groups contains id(s) {unnamed[:10]} that have no name in group_names "
            f"({names}); name every group id."
        )
    if len(set(names.values())) != len(names) or "all" in names.values():
        raise ValueError(
            f"group_names must be distinct and not 'all' (reserved for every example), got {names}."
        )
    return {name: groups == g for g, name in sorted(names.items())}


def _metrics(
    scores: np.ndarray,
    truth: np.ndarray,
    units: np.ndarray,
    decisions: np.ndarray | None,
    *,
    fpr_levels: Sequence[float],
    num_bootstrap: int,
    seed: int,
    level: float,
) -> tuple[dict, tuple[np.ndarray, np.ndarray] | None]:
    """(summary + operating point + intervals, ROC curve) of pooled scores, or
    (an undefined entry, None) when the scores lack members or non-members."""
    num_pos = int(truth.sum())
    if num_pos == 0 or num_pos == truth.size:
        reason = f"{num_pos} members and {truth.size - num_pos} non-members: the ROC needs both."
        counts = {"num_positives": num_pos, "num_negatives": int(truth.size - num_pos)}
        return {"undefined": True, "reason": reason, **counts}, None
    curve = metrics.roc_curve(scores, truth)
    out = metrics.summarize_curve(*curve, num_pos, truth.size - num_pos, fpr_levels)
    if decisions is not None:
        out["operating_point"] = metrics.operating_point(decisions, truth)
    if num_bootstrap > 0:
        ci = metrics.bootstrap_intervals(
            scores,
            truth,
            num_bootstrap=num_bootstrap,
            seed=seed,
            units=units,
            level=level,
            fpr_levels=fpr_levels,
            decisions=decisions,
        )
        if decisions is not None:
            out["operating_point"]["ci"] = ci.pop("operating_point")
        out["ci"] = ci
    return out, curve


def evaluate_signals(
    bank: SignalBank,
    attack_names: str | Sequence[str],
    num_targets: int,
    *,
    groups: np.ndarray | None = None,
    group_names: Sequence[str] | Mapping[int, str] | None = None,
    num_bootstrap: int = 0,
    seed: int = 0,
    level: float = 0.95,
    fpr_levels: Sequence[float] = metrics.FPR_LEVELS,
    attack_options: Mapping[str, Mapping] | None = None,
    exposure: str = "logits",
    registry: Mapping[str, Attack] | None = None,
    require_defined: bool = True,
    log: Callable[[str], None] | None = None,
) -> tuple[dict[str, dict], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Runs attacks on a `SignalBank` with each of the first `num_targets` models as target.

    Args:
      bank: the signals of all M models.
      attack_names: names accepted by `resolve_attacks`; "all" = every attack the bank's
        signals support.
      num_targets: models 0 .. num_targets-1 serve in turn as the target.
      groups: optional [N] int group id of every example, or [T, N] one per target (e.g.
        memorization buckets estimated from each target's own shadow sets, so that a
        target's outputs never decide which group its examples fall in); adds per-group
        metrics ("num_examples" is then the mean number of examples per target).
      group_names: names of the group ids: a sequence (id i -> group_names[i]) or a
        mapping {id: name}; default "group_<id>". Every id in `groups` needs a name; a
        named group without examples is reported as undefined.
      num_bootstrap: resamples of the examples for the intervals (0: no intervals). Cost
        O(num_bootstrap · num_targets · N) per attack and group (~50 ns per element).
      seed: seed of the bootstrap and of every attack (its `seed` argument: shadow sets,
        sampling, attack models), unless `attack_options` gives the attack its own.
      level: confidence level of the intervals.
      fpr_levels: FPR levels of the TPR metrics.
      attack_options: {attack name: keyword arguments for its function}, e.g.
        {"shokri": {"num_epochs": 10}, "rmia_offline": {"a": 0.5}}.
      exposure: "logits", or "labels": attacks that need scores are reported undefined
        (`NEEDS_SCORES`) without being run, even if the bank has scores; "all" then
        means every attack.
      registry: the attacks to choose from (default `ATTACKS`), e.g. entries whose
        functions carry precomputed inputs (the boundary and transfer attacks).
      require_defined: raise if every attack is undefined (False: return the entries;
        for callers that evaluate more attacks elsewhere).
      log: optional progress callback (one line per attack).

    Returns:
      (results, curves): results[name] as described in the module docstring;
      curves[name] = (fpr, tpr) of the pooled ROC of every defined attack.

    Raises:
      ValueError: on a bad num_targets, names, groups or options, or if every requested
        attack is undefined on this data (the reasons are listed).
    """
    num_models = bank.num_models
    if not 1 <= num_targets <= num_models:
        raise ValueError(f"{num_targets=} must be between 1 and the number of models {num_models}.")
    names, registry = _checked_names(bank, attack_names, exposure, registry, attack_options)
    masks = _group_masks(groups, group_names, bank.num_examples, num_targets)
    per_target_groups = groups is not None and np.ndim(groups) == 2
    targets = np.arange(num_targets)
    truth = bank.keep[targets]
    if truth.all() or not truth.any():
        raise ValueError(
            f"The {num_targets} target model(s) have {int(truth.sum())} members among "
            f"{truth.size} (model, example) pairs: the ROC needs members and non-members."
        )
    results, curves, _ = _run_attacks(
        bank,
        names,
        targets,
        truth,
        registry=registry,
        masks=masks,
        per_target_groups=per_target_groups,
        settings=dict(fpr_levels=fpr_levels, num_bootstrap=num_bootstrap, seed=seed, level=level),
        options=dict(attack_options or {}),
        masked=exposure == "labels",
        log=log,
    )
    if not curves and require_defined:
        reasons = "; ".join(f"{n}: {r['reason']}" for n, r in results.items())
        raise ValueError(f"Every requested attack is undefined on this data. {reasons}")
    return results, curves


def _checked_names(bank, attack_names, exposure, registry, attack_options):
    """(attack names, registry) validated against the bank, the exposure and the options."""
    if exposure not in EXPOSURES:
        raise ValueError(f"exposure={exposure!r} must be one of {EXPOSURES}.")
    registry = ATTACKS if registry is None else registry
    masked = exposure == "labels"
    names = resolve_attacks(attack_names, None if masked else bank.available, registry)
    if masked:
        bank.require(
            {s for n in names if not needs_scores(registry[n]) for s in registry[n].needs},
            "label-only",
        )
    stray = sorted(set(attack_options or {}) - set(names))
    if stray:
        raise ValueError(f"attack_options given for attack(s) {stray} that are not being run.")
    return names, registry


def _run_attacks(
    bank: SignalBank,
    names: Sequence[str],
    targets: np.ndarray,
    truth: np.ndarray | None,
    *,
    registry: Mapping[str, Attack],
    masks: Mapping[str, np.ndarray],
    per_target_groups: bool,
    settings: dict,
    options: Mapping[str, Mapping],
    masked: bool,
    log: Callable[[str], None] | None,
) -> tuple[dict[str, dict], dict, dict[str, np.ndarray]]:
    """Scores every attack on `targets` and, given the truth [T, N], measures it.

    Returns:
      (results, curves, scores): the entries of `evaluate_signals` (without the truth: only
      "num_targets", "num_examples", "seconds", "details"), the ROC curves of the defined
      attacks (none without the truth), and each defined attack's scores [T, N].
    """
    num_targets = targets.size
    units = np.tile(np.arange(bank.num_examples), num_targets)
    flat_truth = None if truth is None else np.asarray(truth, bool).ravel()
    results, curves, all_scores = {}, {}, {}
    for name in names:
        start = time.perf_counter()
        base = {"num_targets": int(num_targets), "num_examples": int(bank.num_examples)}
        if masked and needs_scores(registry[name]):
            results[name] = {"undefined": True, "reason": NEEDS_SCORES, **base}
            if log is not None:
                log(f"{name}: undefined ({NEEDS_SCORES})")
            continue
        try:
            output = registry[name].fn(
                bank, targets, **{"seed": settings["seed"], **options.get(name, {})}
            )
            scores = np.asarray(output.scores, dtype=np.float64)
            if scores.shape != (num_targets, bank.num_examples):
                raise RuntimeError(
                    f"attack {name!r} returned scores of shape {scores.shape}, expected "
                    f"{(num_targets, bank.num_examples)}."
                )
            num_nan = int(np.isnan(scores).sum())
            if num_nan:
                raise AttackUndefined(f"{name} produced {num_nan} NaN score(s).")
        except AttackUndefined as e:
            results[name] = {"undefined": True, "reason": str(e), **base}
            if log is not None:
                log(f"{name}: undefined ({e})")
            continue
        all_scores[name] = scores
        decisions = None
        if output.threshold is not None:
            decisions = (scores >= np.asarray(output.threshold, dtype=np.float64)).ravel()
        res = dict(base)
        if flat_truth is not None:
            pooled = scores.ravel()
            summary, curve = _metrics(pooled, flat_truth, units, decisions, **settings)
            res = {**summary, **base}
            curves[name] = curve
        elif decisions is not None:
            res["decided_members"] = int(decisions.sum())
        if output.extras:
            res["details"] = output.extras
        if masks and flat_truth is not None:
            res["groups"] = {"all": {**summary, "num_examples": int(bank.num_examples)}}
            for group, mask in masks.items():
                if not mask.any():
                    res["groups"][group] = {
                        "undefined": True,
                        "reason": "no example belongs to this group",
                        "num_positives": 0,
                        "num_negatives": 0,
                        "num_examples": 0,
                    }
                    continue
                sel = mask.ravel()
                sub, _ = _metrics(
                    pooled[sel],
                    flat_truth[sel],
                    units[sel],
                    None if decisions is None else decisions[sel],
                    **settings,
                )
                count = float(mask.sum() / num_targets) if per_target_groups else int(mask[0].sum())
                res["groups"][group] = {**sub, "num_examples": count}
        res["seconds"] = round(time.perf_counter() - start, 3)
        results[name] = res
        if log is not None:
            auc = f"AUC {res['auc']:.4f} " if "auc" in res else ""
            log(f"{name}: {auc}({res['seconds']:.1f} s)")
    return results, curves, all_scores


def evaluate_attacks(
    phi: np.ndarray,
    keep: np.ndarray,
    attack_names: str | Sequence[str],
    num_targets: int,
    **kwargs,
) -> tuple[dict[str, dict], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Runs the attacks that need only φ (all but Song and Shokri).

    Args:
      phi: [M, N, A] float φ (see `lira_jax.signals.logit_scaled_confidence`).
      keep: [M, N] bool, whether model m trained on example n.
      attack_names: names accepted by `resolve_attacks` ("all": every φ-based attack).
      num_targets: how many models (0 .. num_targets-1) serve in turn as the target.
      **kwargs: keyword arguments of `evaluate_signals` (groups, num_bootstrap, ...).

    Returns:
      (results, curves) as in `evaluate_signals`.

    Raises:
      ValueError: on bad shapes, M < 2, num_targets outside [1, M], or as
        `evaluate_signals`.
    """
    bank = SignalBank(keep=keep, phi=phi)
    return evaluate_signals(bank, attack_names, num_targets, **kwargs)


def evaluate_logits(
    logits: np.ndarray,
    labels: np.ndarray,
    keep: np.ndarray,
    attack_names: str | Sequence[str],
    num_targets: int,
    **kwargs,
) -> tuple[dict[str, dict], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Runs attacks on a store's arrays (the entry point of `experiments.attack`).

    Only the signals the requested attacks need are computed (see
    `attacks.bank.signal_bank_from_logits` for memory and chunking).

    Args:
      logits: [M, N, A, C] logits of every model on every example under every query (an
        array, or a lazy array whose model slices can be read one block at a time).
      labels: [N] int true labels.
      keep: [M, N] bool membership.
      attack_names: names accepted by `resolve_attacks`.
      num_targets: models 0 .. num_targets-1 serve in turn as the target.
      **kwargs: keyword arguments of `evaluate_signals`: groups, group_names,
        num_bootstrap, seed, level, fpr_levels, attack_options, exposure, registry, log.
        With exposure "labels" the bank holds only the predicted labels.

    Returns:
      (results, curves) as in `evaluate_signals`.

    Raises:
      ValueError: on NaN/inf logits (naming the models), bad shapes or labels, or as
        `evaluate_signals`.
    """
    registry = kwargs.get("registry") or ATTACKS
    names = resolve_attacks(attack_names, registry=registry)
    num_models = np.shape(keep)[0] if np.ndim(keep) == 2 else None
    if num_models is not None and not 1 <= num_targets <= num_models:
        raise ValueError(f"{num_targets=} must be between 1 and the number of models {num_models}.")
    signal_names = {s for n in names for s in registry[n].needs}
    bank = exposed_bank(
        logits, labels, keep, signal_names, kwargs.get("exposure", "logits"), kwargs.get("log")
    )
    return evaluate_signals(bank, names, num_targets, **kwargs)


def exposed_bank(
    logits,
    labels: np.ndarray,
    keep: np.ndarray,
    signal_names: Iterable[str],
    exposure: str = "logits",
    log: Callable[[str], None] | None = None,
) -> SignalBank:
    """The `SignalBank` of what a target exposes.

    Args:
      logits: [M, N, A, C] logits (array or lazy array, read in blocks of models).
      labels: [N] true labels.
      keep: [M, N] membership.
      signal_names: the signals wanted (`Attack.needs`; "labels" is ignored).
      exposure: "logits": those signals; "labels": the predicted labels only, whatever
        is wanted (scores never enter the bank).
      log: progress callback.
    """
    if exposure not in EXPOSURES:
        raise ValueError(f"exposure={exposure!r} must be one of {EXPOSURES}.")
    if exposure == "labels":
        return SignalBank(
            keep=keep, predicted=label_only.predicted_labels(logits), labels=np.asarray(labels)
        )
    wanted = set(signal_names) - {"labels"}
    return signal_bank_from_logits(logits, labels, keep, signal_names=wanted, log=log)

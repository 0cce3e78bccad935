"""How many shadow models to train: a pilot, a selection, and a stopping rule.

"Why Train More?" argues that highly memorized examples are attacked well with a few
shadow models. `adaptive_audit` acts on it: it grows one store pair of models by pair of
models and stops as soon as the attack on the examples worth auditing is strong and no
longer changing. `experiments.budget` runs it with training in between; everything here is
pure (numpy/scipy on the host), so the same loop runs on synthetic stores in the tests.

The protocol, precisely (P = `pilot_models`, S = `step_models`, k = models at a check):

1. **Store.** The keep rule is "pairs" (`membership.paired_keep_mask`): models 2j and
   2j + 1 train on complementary halves of the pool, so the first k models (k even) are a
   balanced store: every example IN for exactly k/2 of them. The store's config is fixed
   (num_models = the largest budget); checks read its completed prefix.
2. **Pilot.** Models [0, P) (`pilot_models`). From their 0/1 correctness on the identity
   query and their φ: memorization with Newcombe's interval
   (`memorization.memorization_interval`), the privacy score |Δμ|/(σ_in + σ_out) of φ
   averaged over queries (`memorization.privacy_score`, queries="mean"), and the
   predicted shadow models per side with an interval
   (`sample_complexity.shadow_models_needed`). The selection is made once, from the pilot
   only, and never changes:
     * "memorization": the `top` examples by the interval's lower end, ties broken by the
       point estimate, then by the privacy score, then by the lower index;
     * "privacy_score": the `top` examples by privacy score (ties: lower index);
     * "all": every example.
3. **Roles.** Pilot models are never targets (their outputs chose the selection, so as
   targets they would see their own membership in it). The other pairs are numbered
   i = j − P/2 from the first pair after the pilot; both models of pair i are *stopping
   targets* if i is even and *evaluation targets* if i is odd. Every model, pilot
   included, serves as a shadow.
4. **Scores.** LiRA online with fixed variance (the variant LiRA's authors recommend with
   few shadow models), on all queries: target t is scored against every
   model of the prefix except t and its partner t XOR 1 (`paired_lira_scores`): each
   example then has exactly k/2 − 1 IN and k/2 − 1 OUT shadows whatever the target's
   membership, and the one model whose training set is the complement of the target's
   never serves as its shadow. σ is pooled over all N examples.
5. **Checks** at k = P + S, P + 2S, …, up to `max_models` (the last check is at
   `max_models` itself). At each check, metrics pool the (target, example)
   scores of a target set over an example set; intervals are percentile bootstrap
   intervals with the examples as resampling units (`metrics.bootstrap_intervals`,
   `num_bootstrap` resamples, `seed`, `level`):
     * "stopping": stopping targets × selected examples (the rule's input);
     * "selected": evaluation targets × selected examples (what is reported);
     * "all": every model of the prefix as target × every example.
   TPR at FPR x is the largest TPR with FPR strictly below x (`metrics.tpr_at_fpr`).
6. **Stopping rule** (`stop_decision`). Let τ be the stopping TPR at `at_fpr` and [lo, hi]
   its interval at check c. Stop at the first check where both
     (a) τ >= `target_tpr`, and
     (b) check c − 1 exists and max(|lo_c − lo_(c−1)|, |hi_c − hi_(c−1)|) <= `tolerance`
         (the interval has stabilised; an undefined interval is not stable);
   otherwise stop at the check at `max_models` ("max_models"). The reported figures are
   the evaluation targets' ("selected") at the stopping check: the rule never reads the
   evaluation targets' scores, so stopping when the stopping targets happen to score high
   cannot inflate them (tests/test_shadow_budget.py: on stores without membership signal
   the stopping targets' TPR at the stop is far above the FPR, the reported one is not).
7. **Comparison** (`full_comparison`, `compare_full` = F): the first F models of the same
   store, "selected" with every non-pilot model as target (no stopping decision is made
   there, so both target sets serve) and "all" with every model as target.

Design notes: the split is by models (targets), not by examples: the selected examples
are few, and halving them would halve the one set whose attack is reported. Splitting by
whole pairs keeps a target and its complement on the same side. Because pairs are
independent draws, the pilot's selection is independent of every later target's
membership; the selection does reuse the pilot models as shadows, which can only bias the
fitted IN/OUT gap of the selected examples (a winner's curse), not the truth the targets
are scored against.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from lira_jax import memorization as mem_lib
from lira_jax import metrics
from lira_jax import sample_complexity as sc
from lira_jax.attacks.lira import lira_scores

__all__ = [
    "ROLES",
    "SELECTIONS",
    "BudgetSettings",
    "Prefix",
    "adaptive_audit",
    "check_compare_full",
    "check_paired",
    "evaluate_check",
    "full_comparison",
    "model_roles",
    "paired_lira_scores",
    "pilot_selection",
    "read_prefix",
    "realised_models_needed",
    "stop_decision",
]

SELECTIONS = ("memorization", "privacy_score", "all")
ROLES = ("pilot", "stopping", "evaluation")
ATTACK = "lira_online_fixed_variance"


class Prefix(NamedTuple):
    """The signals of the first k models of a store.

    Attributes:
      phi: [k, N, A] float64 LiRA φ on every query.
      correct: [k, N] 0/1 correctness on the identity query.
      keep: [k, N] bool membership (a paired mask).
    """

    phi: np.ndarray
    correct: np.ndarray
    keep: np.ndarray


@dataclasses.dataclass(frozen=True)
class BudgetSettings:
    """The planner's settings (see the module docstring for what each does).

    Attributes:
      target_tpr: the stopping TPR to reach, in [0, 1] (0: stop once the interval is
        stable, whatever the TPR).
      at_fpr: the FPR at which the TPR is read, in (0, 1).
      pilot_models: P, even and >= 4 (2 IN and 2 OUT models per example).
      step_models: S, a multiple of 4 (each step adds as many stopping as evaluation pairs).
      max_models: the largest budget, even and >= P + S.
      select: one of `SELECTIONS`.
      top: examples selected ("memorization", "privacy_score"); ignored for "all".
      tolerance: how far the interval's ends may move between checks, in [0, 1].
      num_bootstrap: bootstrap resamples per interval (>= 1).
      level: confidence level of every interval.
      seed: seed of the bootstrap.
      fpr_levels: FPR levels reported besides `at_fpr`.
    """

    target_tpr: float = 0.5
    at_fpr: float = 0.01
    pilot_models: int = 8
    step_models: int = 8
    max_models: int = 256
    select: str = "memorization"
    top: int = 100
    tolerance: float = 0.05
    num_bootstrap: int = 200
    level: float = 0.95
    seed: int = 0
    fpr_levels: tuple[float, ...] = (1e-2, 1e-3)

    def validate(self, num_examples: int | None = None) -> None:
        """Raises ValueError naming the first bad setting and what to use instead."""
        if not 0.0 <= self.target_tpr <= 1.0:
            raise ValueError(
                f"--target_tpr={self.target_tpr} must lie in [0, 1], e.g. 0.5 (0: stop as soon "
                "as the interval is stable)."
            )
        if not 0.0 < self.at_fpr < 1.0:
            raise ValueError(f"--at_fpr={self.at_fpr} must lie in (0, 1), e.g. 0.01.")
        if self.pilot_models < 4 or self.pilot_models % 2:
            raise ValueError(
                f"--pilot_models={self.pilot_models} must be even and >= 4 (pairs of models; "
                "memorization needs 2 IN and 2 OUT models per example), e.g. 8."
            )
        if self.step_models < 4 or self.step_models % 4:
            raise ValueError(
                f"--step_models={self.step_models} must be a multiple of 4 (each step adds "
                "one stopping and one evaluation pair, or more), e.g. 8."
            )
        if self.max_models % 2 or self.max_models < self.pilot_models + self.step_models:
            raise ValueError(
                f"--max_models={self.max_models} must be even and >= --pilot_models + "
                f"--step_models = {self.pilot_models + self.step_models}."
            )
        if self.select not in SELECTIONS:
            raise ValueError(f"--select={self.select!r}; choose one of {SELECTIONS}.")
        if self.select != "all" and self.top < 1:
            raise ValueError(f"--top={self.top} must be >= 1 (or use --select=all).")
        if num_examples is not None and self.select != "all" and self.top > num_examples:
            raise ValueError(
                f"--top={self.top} exceeds the {num_examples} examples of the pool; choose "
                "fewer, or --select=all."
            )
        if not 0.0 <= self.tolerance <= 1.0:
            raise ValueError(f"--stop_tolerance={self.tolerance} must lie in [0, 1], e.g. 0.05.")
        if self.num_bootstrap < 1:
            raise ValueError(f"--num_bootstrap={self.num_bootstrap} must be >= 1 (intervals).")
        if not 0.0 < self.level < 1.0:
            raise ValueError(f"level={self.level} must lie in (0, 1).")

    def checks(self) -> list[int]:
        """The model counts k at which the rule is checked: P + S, P + 2S, …, max_models."""
        ks = list(range(self.pilot_models + self.step_models, self.max_models, self.step_models))
        return [*ks, self.max_models]

    def levels(self) -> list[float]:
        """The reported FPR levels, `at_fpr` included, from the largest down."""
        return sorted({*self.fpr_levels, self.at_fpr}, reverse=True)


def read_prefix(store, num_models: int | None = None) -> Prefix:
    """The signals of a store's first models: how a store still being grown is read.

    Args:
      store: a `lira_jax.store.LogitStore`.
      num_models: k (default: `store.completed_prefix()`, rounded down to even for a
        paired store); models [0, k) must be written.

    Returns:
      `Prefix` (φ on every query, 0/1 correctness on the identity query, keep[:k]). Any
      attack runs on it as on a complete store, e.g. `attacks.evaluate_logits(
      store.read_logits(slice(0, k)), store.labels(), prefix.keep, ...)`: with the keep
      rule "pairs" an even prefix is balanced.
    """
    if num_models is None:
        num_models = store.completed_prefix()
        if store.config.get("keep_rule") == "pairs":
            num_models -= num_models % 2
    logits = store.read_logits(models=slice(0, num_models))
    sig = mem_lib.memorization_signals(logits, store.labels())
    return Prefix(sig.phi, sig.correct, store.keep()[:num_models])


def check_compare_full(compare_full: int | None, settings: BudgetSettings) -> None:
    """Raises ValueError unless F is None or even, >= P + 4 and <= max_models."""
    if compare_full is None:
        return
    if compare_full % 2 or compare_full < settings.pilot_models + 4:
        raise ValueError(
            f"--compare_full={compare_full} must be even and >= --pilot_models + 4 "
            f"= {settings.pilot_models + 4} (targets outside the pilot)."
        )
    if compare_full > settings.max_models:
        raise ValueError(
            f"--compare_full={compare_full} exceeds --max_models={settings.max_models}: the "
            "full budget is the first models of the same store; raise --max_models."
        )


def check_paired(keep: np.ndarray) -> None:
    """Raises ValueError unless keep [k, N] is a paired mask: k even, row 2j+1 = ¬row 2j."""
    keep = np.asarray(keep)
    if keep.dtype != bool or keep.ndim != 2:
        raise ValueError(f"keep must be a bool [models, examples] array, got {keep.dtype}.")
    if keep.shape[0] % 2 or not np.array_equal(keep[1::2], ~keep[0::2]):
        raise ValueError(
            "keep is not a mask of complementary pairs (rows 2j and 2j+1 complementary, an "
            "even number of rows): train the store with --keep_rule=pairs (experiments.budget "
            "does) and read an even prefix of it."
        )


def model_roles(num_models: int, pilot_models: int) -> np.ndarray:
    """[num_models] role of each model: "pilot" (m < P), then pairs alternating
    "stopping" (pair i = m // 2 − P/2 even) and "evaluation" (i odd)."""
    if pilot_models % 2 or num_models % 2:
        raise ValueError(f"{num_models=} and {pilot_models=} must be even (pairs).")
    m = np.arange(num_models)
    pair = m // 2 - pilot_models // 2
    roles = np.where(pair % 2 == 0, "stopping", "evaluation").astype(object)
    roles[m < pilot_models] = "pilot"
    return roles


def paired_lira_scores(phi: np.ndarray, keep: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """LiRA online, fixed variance, of each target against all models but it and its partner.

    Args:
      phi: [k, N, A] φ of the first k models of a paired store.
      keep: [k, N] paired keep mask (`check_paired`).
      targets: [T] model indices < k.

    Returns:
      [T, N] float64 scores: row i equals `lira_scores(phi[t], phi[S], keep[S],
      online=True, fix_variance=True)` with S = every model but t and t XOR 1 (k/2 − 1 IN
      and k/2 − 1 OUT shadows per example).

    Raises:
      ValueError: on a mask that is not paired, fewer than 4 models, or bad targets.
    """
    check_paired(keep)
    phi = np.asarray(phi, dtype=np.float64)
    num_models = keep.shape[0]
    if num_models < 4:
        raise ValueError(
            f"Need >= 4 models (a target, its partner, an IN and an OUT), got {num_models}."
        )
    targets = np.asarray(targets, dtype=np.int64).reshape(-1)
    if targets.size and (targets.min() < 0 or targets.max() >= num_models):
        raise ValueError(f"targets must be model indices in [0, {num_models}), got {targets}.")
    out = np.empty((targets.size, keep.shape[1]))
    models = np.arange(num_models)
    for i, t in enumerate(targets):
        shadows = models[(models != t) & (models != (t ^ 1))]
        out[i] = lira_scores(phi[t], phi[shadows], keep[shadows], online=True, fix_variance=True)
    return out


def _summary(
    scores: np.ndarray,
    truth: np.ndarray,
    targets: np.ndarray,
    examples: np.ndarray,
    settings: BudgetSettings,
) -> dict:
    """Pooled metrics of targets × examples with bootstrap intervals over the examples."""
    s = scores[np.ix_(targets, examples)]
    t = truth[np.ix_(targets, examples)]
    units = np.broadcast_to(examples[None, :], s.shape)
    out = metrics.summarize(
        s.ravel(),
        t.ravel(),
        settings.levels(),
        num_bootstrap=settings.num_bootstrap,
        seed=settings.seed,
        units=units.ravel(),
        level=settings.level,
    )
    out["num_targets"] = int(targets.size)
    out["num_examples"] = int(examples.size)
    return out


def evaluate_check(
    scores: np.ndarray, keep: np.ndarray, selected: np.ndarray, settings: BudgetSettings
) -> dict:
    """The three figures of one check (module docstring, point 5).

    Args:
      scores: [k, N] `paired_lira_scores` of every model of the prefix.
      keep: [k, N] the prefix's keep mask (the truth).
      selected: [K] indices of the selected examples.
      settings: the planner's settings.

    Returns:
      {"num_models": k, "stopping", "selected", "all"}: each a `metrics.summarize` dict with
      "ci", "num_targets" and "num_examples".
    """
    num_models, num_examples = keep.shape
    roles = model_roles(num_models, settings.pilot_models)
    stopping = np.flatnonzero(roles == "stopping")
    evaluation = np.flatnonzero(roles == "evaluation")
    if stopping.size == 0 or evaluation.size == 0:
        raise ValueError(
            f"A check at {num_models} models has no stopping or no evaluation target (pilot "
            f"{settings.pilot_models}); checks start at pilot + step models."
        )
    everything = np.arange(num_examples)
    return {
        "num_models": int(num_models),
        "stopping": _summary(scores, keep, stopping, selected, settings),
        "selected": _summary(scores, keep, evaluation, selected, settings),
        "all": _summary(scores, keep, np.arange(num_models), everything, settings),
    }


def _tpr(entry: dict, level: float) -> tuple[float, list[float] | None]:
    key = str(level)
    return entry["tpr_at_fpr"][key], entry["ci"]["tpr_at_fpr"][key]


def stop_decision(previous: dict | None, current: dict, settings: BudgetSettings) -> dict:
    """The stopping rule at one check (module docstring, point 6).

    Args:
      previous: the previous check's `evaluate_check` result (None at the first check).
      current: this check's.
      settings: target_tpr, at_fpr, tolerance and max_models.

    Returns:
      {"tpr", "interval", "reached", "moved" (None at the first check or with an
       undefined interval), "stable", "stop", "reason" ("target_reached", "max_models" or
       None)}.
    """
    tpr, interval = _tpr(current["stopping"], settings.at_fpr)
    reached = tpr >= settings.target_tpr
    moved = None
    if previous is not None:
        _, before = _tpr(previous["stopping"], settings.at_fpr)
        if interval is not None and before is not None:
            moved = max(abs(interval[0] - before[0]), abs(interval[1] - before[1]))
    stable = moved is not None and moved <= settings.tolerance
    reason = None
    if reached and stable:
        reason = "target_reached"
    elif current["num_models"] >= settings.max_models:
        reason = "max_models"
    return {
        "tpr": tpr,
        "interval": interval,
        "reached": bool(reached),
        "moved": moved,
        "stable": bool(stable),
        "stop": reason is not None,
        "reason": reason,
    }


def _per_side_summary(needed: sc.ModelsNeeded, examples: np.ndarray) -> dict:
    """Median predicted shadow models per side (and its interval's medians) over examples,
    and the store size that gives them: 2·⌈per side⌉ + 2 models (leave-one-out)."""
    med = float(np.median(needed.per_side[examples]))
    return {
        "per_side": med,
        "per_side_lo": float(np.median(needed.per_side_lo[examples])),
        "per_side_hi": float(np.median(needed.per_side_hi[examples])),
        "models": 2 * math.ceil(med) + 2 if math.isfinite(med) else None,
        "num_examples": int(examples.size),
    }


def pilot_selection(pilot: Prefix, settings: BudgetSettings) -> dict:
    """The selection of the examples worth auditing, from the pilot only (point 2).

    Args:
      pilot: the first `pilot_models` models' signals.
      settings: select, top and level.

    Returns:
      {"rule", "top", "indices" (selected, in rank order), "memorization", "memorization_lo",
       "memorization_hi", "privacy_score" (per selected example), "prediction":
       {"selected", "all": `_per_side_summary`}, and "per_example" arrays for all N:
       "memorization", "memorization_lo", "memorization_hi", "privacy_score",
       "predicted_per_side"}.
    """
    check_paired(pilot.keep)
    mem = mem_lib.memorization_interval(pilot.keep, pilot.correct, level=settings.level)
    privacy = mem_lib.privacy_score(pilot.phi, pilot.keep, queries="mean")
    needed = sc.shadow_models_needed(pilot.phi, pilot.keep, level=settings.level)
    num_examples = pilot.keep.shape[1]
    index = np.arange(num_examples)
    if settings.select == "all":
        order = index
    elif settings.select == "memorization":
        # np.lexsort sorts by the last key first.
        order = np.lexsort((index, -privacy, -mem.mem, -mem.lo))[: settings.top]
    else:
        order = np.lexsort((index, -privacy))[: settings.top]
    return {
        "rule": settings.select,
        "top": None if settings.select == "all" else int(settings.top),
        "indices": order,
        "memorization": mem.mem[order],
        "memorization_lo": mem.lo[order],
        "memorization_hi": mem.hi[order],
        "privacy_score": privacy[order],
        "prediction": {
            "selected": _per_side_summary(needed, order),
            "all": _per_side_summary(needed, index),
        },
        "per_example": {
            "memorization": mem.mem,
            "memorization_lo": mem.lo,
            "memorization_hi": mem.hi,
            "privacy_score": privacy,
            "predicted_per_side": needed.per_side,
        },
    }


def full_comparison(full: Prefix, selected: np.ndarray, settings: BudgetSettings) -> dict:
    """The fixed-budget figures on the first F models (module docstring, point 7).

    Returns:
      {"num_models": F, "selected": non-pilot targets × selected examples, "all": every
      target × every example}, each as in `evaluate_check`.
    """
    scores = paired_lira_scores(full.phi, full.keep, np.arange(full.keep.shape[0]))
    roles = model_roles(full.keep.shape[0], settings.pilot_models)
    targets = np.flatnonzero(roles != "pilot")
    everything = np.arange(full.keep.shape[1])
    return {
        "num_models": int(full.keep.shape[0]),
        "selected": _summary(scores, full.keep, targets, selected, settings),
        "all": _summary(scores, full.keep, np.arange(full.keep.shape[0]), everything, settings),
    }


def realised_models_needed(
    prefix: Prefix,
    selected: np.ndarray,
    settings: BudgetSettings,
    *,
    fraction: float = 0.9,
    num_draws: int = 10,
    num_targets: int = 16,
) -> dict:
    """Shadow models per side measured by subsampling the prefix, for the selection and all.

    `sample_complexity.shadow_model_curves` of LiRA online fixed variance with non-pilot
    targets only (the models are reordered so that they come first), groups "selected" and
    "other", then `models_needed_by_subsampling` at `fraction`.

    Returns:
      {"fraction", "selected", "all" (each {"per_side": k, "models": 2k + 2}, or when no
      k below the largest resolves it {"per_side": None, "models": None, "at_least":
      the largest k}), "ks", "auc": {group: median AUC per k}, "all_shadows_auc": {group: AUC}}.
    """
    num_models, num_examples = prefix.keep.shape
    pilot = settings.pilot_models
    order = np.r_[np.arange(pilot, num_models), np.arange(pilot)]
    groups = np.ones(num_examples, np.int64)
    groups[selected] = 0
    result = sc.shadow_model_curves(
        prefix.phi[order],
        prefix.keep[order],
        num_draws=num_draws,
        num_targets=min(num_targets, num_models - pilot),
        attacks=[ATTACK],
        groups=groups,
        group_names=["selected", "other"],
        fpr_levels=[settings.at_fpr],
        seed=settings.seed,
    )
    needed = sc.models_needed_by_subsampling(result, attack=ATTACK, fraction=fraction)
    curves = result["attacks"][ATTACK]["groups"]

    def entry(k):
        # None: not reached below the largest k, whose curve is the reference itself.
        if k is None:
            return {"per_side": None, "models": None, "at_least": result["ks"][-1]}
        return {"per_side": k, "models": 2 * k + 2}

    return {
        "fraction": fraction,
        "selected": entry(needed["selected"]),
        "all": entry(needed["all"]),
        "ks": result["ks"],
        "auc": {g: curves[g]["auc"]["median"] for g in ("selected", "all")},
        "all_shadows_auc": {g: curves[g]["all_shadows"]["auc"] for g in ("selected", "all")},
    }


def adaptive_audit(
    grow: Callable[[int], Prefix],
    settings: BudgetSettings,
    *,
    compare_full: int | None = None,
    measure_realised: bool = True,
    on_check: Callable[[dict], None] | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> dict:
    """Runs the protocol of the module docstring.

    Args:
      grow: grow(k) makes the first k models exist (trains them, if need be) and returns
        their `Prefix`; it is called with P, then each check's k in increasing order, then
        F. Everything returned is a deterministic function of what grow returns, so a run
        killed and started again reaches the same decisions.
      settings: the planner's settings.
      compare_full: F, the fixed budget to compare with (None: no comparison).
      measure_realised: also measure the models needed by subsampling (at the stop and at
        F; `realised_models_needed`, the costliest part of the analysis).
      on_check: called with the result so far after the pilot and after every check.
      log: progress lines.

    Returns:
      {"settings", "selection" (`pilot_selection` without "per_example"), "checks": [each
       `evaluate_check` + "decision" (`stop_decision`) + "prediction" (the median predicted
       per-side models of the selected and of all examples from the prefix)],
       "models_used", "stop_reason", "realised" (`realised_models_needed` at the stop), and
       with compare_full: "full_models", "full" (`full_comparison`), "realised_full" (the
       "realised" entries only with measure_realised); plus
       "per_example" (the pilot's arrays) and "complete" (False until the end)}.
    """
    pilot = grow(settings.pilot_models)
    settings.validate(pilot.keep.shape[1])
    check_compare_full(compare_full, settings)
    selection = pilot_selection(pilot, settings)
    selected = selection["indices"]
    result = {
        "settings": dataclasses.asdict(settings),
        "selection": {k: v for k, v in selection.items() if k != "per_example"},
        "per_example": selection["per_example"],
        "checks": [],
        "complete": False,
    }
    pred = selection["prediction"]
    log(
        f"pilot of {settings.pilot_models} models: selected {selected.size} examples "
        f"({settings.select}); predicted shadow models per side: selected "
        f"{pred['selected']['per_side']:.1f}, all {pred['all']['per_side']:.1f}"
    )
    if on_check:
        on_check(result)
    previous, stop = None, None
    for k in settings.checks():
        prefix = grow(k)
        scores = paired_lira_scores(prefix.phi, prefix.keep, np.arange(k))
        check = evaluate_check(scores, prefix.keep, selected, settings)
        check["decision"] = stop_decision(previous, check, settings)
        needed = sc.shadow_models_needed(prefix.phi, prefix.keep, level=settings.level)
        check["prediction"] = {
            "selected": _per_side_summary(needed, selected),
            "all": _per_side_summary(needed, np.arange(prefix.keep.shape[1])),
        }
        result["checks"].append(check)
        d, lv = check["decision"], str(settings.at_fpr)
        log(
            f"{k} models: stopping TPR@{settings.at_fpr:g} {d['tpr']:.3f} "
            f"{_fmt_interval(d['interval'])} (moved {_fmt_moved(d['moved'])}); selected "
            f"{check['selected']['tpr_at_fpr'][lv]:.3f}, all {check['all']['tpr_at_fpr'][lv]:.3f}"
            + (f" -> stop ({d['reason']})" if d["stop"] else "")
        )
        if on_check:
            on_check(result)
        previous = check
        if d["stop"]:
            stop = check
            break
    result["models_used"] = stop["num_models"]
    result["stop_reason"] = stop["decision"]["reason"]
    if measure_realised:
        result["realised"] = realised_models_needed(prefix, selected, settings)
    if compare_full is not None:
        full = grow(compare_full)
        result["full_models"] = int(compare_full)
        result["full"] = full_comparison(full, selected, settings)
        if measure_realised:
            result["realised_full"] = realised_models_needed(full, selected, settings)
        lv = str(settings.at_fpr)
        log(
            f"full budget of {compare_full} models: selected TPR@{settings.at_fpr:g} "
            f"{result['full']['selected']['tpr_at_fpr'][lv]:.3f}, all "
            f"{result['full']['all']['tpr_at_fpr'][lv]:.3f}"
        )
    result["complete"] = True
    if on_check:
        on_check(result)
    return result


def _fmt_interval(interval: Sequence[float] | None) -> str:
    return "[n/a]" if interval is None else f"[{interval[0]:.3f}, {interval[1]:.3f}]"


def _fmt_moved(moved: float | None) -> str:
    return "n/a" if moved is None else f"{moved:.3f}"

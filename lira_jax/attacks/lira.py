"""Likelihood Ratio Attack (LiRA; Carlini et al., 2022) and the global-threshold baseline.

Design notes: one implementation covers the four LiRA variants of the reference code
(online/offline × per-example/fixed variance) through two keyword arguments. Inputs are
the logit-scaled confidences φ (see `lira_jax.signals`) of one target model and of S
shadow models on N examples under A queries (augmentations). For every example and query
we fit a Gaussian to the shadow φ of the models that trained on the example (IN) and of
those that did not (OUT): μ = median, σ = standard deviation (ddof=0), as in the
reference. Masked statistics are computed without a Python loop over examples: the
median from a sort along the shadow axis with the excluded entries pushed to the end,
the standard deviation from masked sums.

  * fix_variance=True replaces the per-example σ by one global σ_in (resp. σ_out): the
    std of all IN (resp. OUT) values pooled over shadows, examples and queries, which is
    what the reference's `np.std(dat_in)` computes. (The reference's online variant also
    uses the IN pool for σ_out; we use the OUT pool for σ_out, as the paper describes.)
  * online: score = mean over queries of log N(φ; μ_in, σ_in) − log N(φ; μ_out, σ_out).
  * offline: the paper's one-sided test against the OUT Gaussian. Per query the p-value
    of "φ is no larger than an OUT model's" is P[Z > φ], Z ~ N(μ_out, σ_out); the score is
    the mean over queries of −log P[Z > φ] (Fisher's combination of the per-query
    p-values). With one query this ranks examples exactly like the paper's
    Λ = 1 − P[Z > φ] = Φ((φ − μ_out)/σ_out); we use −log sf rather than log cdf because
    log cdf rounds to 0 for φ more than ~38σ above μ_out, which would merge the most
    confident members into one tie exactly where low-FPR thresholds live. (The
    reference's offline code uses the two-sided −log N(φ; μ_out, σ_out) instead.)
  * 1e-30 is added to every σ so that an example whose shadows agree exactly gives a
    finite, very confident score rather than NaN.

The global-threshold baseline scores the target's own φ and uses no shadow model.

Examples that no shadow model trained on (online) or that every shadow model trained on
are an error (`AttackUndefined`), not a NaN score; so are, for the per-example-σ
variants, examples with a single IN (online) or OUT shadow model, whose σ would be 0
and whose scores ±1e60 would make the ROC meaningless (with 4 models, per-example-σ LiRA
gave AUC 0.0). More shadow models, a pkeep nearer 0.5, or a fixed-variance variant fixes
them.

Leave-one-model-out (`lira_attack`): target t is scored against shadow sets whose sizes do
not depend on its membership (`lira_jax.attacks.shadow_sets`): for a balanced mask, every
model but t and, per example, one more model dropped from the group t is not in, so each
example has count_in − 1 IN and count_out − 1 OUT shadows (with the unequal counts of
plain leave-one-out, LiRA online scored AUC 0.47 instead of 0.5 on stores without any
membership signal at 16 models). Offline variants use the same OUT sets. The medians
and standard deviations of all M models are summarised once (`lira_jax.attacks._loo`)
and, per target and example, the one value each group loses is taken out (the target's
own, or the dropped model's), so T targets cost one sort of [M, N, A] plus O(T·N·A), not
T sorts. The pooled σ of the fixed-variance variants leaves out everything the target's
groups lose over all examples, not just over the block being scored. The four variants
share these statistics: the first variant asked for computes all four for the requested
targets and caches them on the bank. Results equal `lira_scores` called with the same
shadow sets (`shadow_mask`), up to float rounding of the variance update. An unbalanced
mask (not what stores hold) is handled one target at a time from its shadow mask.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.special

from lira_jax.attacks import _loo, shadow_sets
from lira_jax.attacks.bank import AttackOutput, AttackUndefined, SignalBank

__all__ = ["global_threshold_attack", "global_threshold_scores", "lira_attack", "lira_scores"]

_SIGMA_EPS = 1e-30
_CHUNK_ELEMENTS = 1 << 21  # values sorted at once when summarising
_BLOCK_ELEMENTS = 1 << 16  # (example·query, target) pairs scored at once: cache-sized
_VARIANTS = ((True, False), (True, True), (False, False), (False, True))  # (online, fixed)


@dataclasses.dataclass(frozen=True)
class _Pooled:
    """Sums over every value of a group (all columns): the fixed-variance statistics."""

    count: int
    center: float
    s1: float
    s2: float

    def loo_var(self, count: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
        """Population variance after removing values with these sums about `center`."""
        n = self.count - count
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = (self.s1 - s1) / n
            var = np.maximum((self.s2 - s2) / n - mean * mean, 0.0)
        return np.where(n > 0, var, np.nan)


@dataclasses.dataclass(frozen=True)
class _Summary:
    """IN/OUT statistics of a set of models, per column (rows = example·query) and pooled."""

    stats_in: _loo.OrderStats
    stats_out: _loo.OrderStats
    moments_in: _loo.GroupMoments
    moments_out: _loo.GroupMoments
    pooled_in: _Pooled
    pooled_out: _Pooled

    def rows(self, sl: slice) -> _Summary:
        """The statistics of a range of columns (the pooled sums stay whole)."""

        def cut(obj):
            fields = dataclasses.fields(obj)
            return type(obj)(*(getattr(obj, f.name)[sl] for f in fields))

        return _Summary(
            cut(self.stats_in),
            cut(self.stats_out),
            cut(self.moments_in),
            cut(self.moments_out),
            self.pooled_in,
            self.pooled_out,
        )


def _summarize(phi: np.ndarray, keep: np.ndarray, use: np.ndarray | None = None) -> _Summary:
    """Order statistics and moments of the IN and OUT φ of every column, in chunks of
    examples so that the sorted copies never exceed `_CHUNK_ELEMENTS` values each.

    Args:
      phi: [M, N, A] φ.
      keep: [M, N] bool membership.
      use: [M, N] bool, which models count for each example (default: all).
    """
    num_models, num_examples, num_queries = phi.shape
    in_mask, out_mask = (keep, ~keep) if use is None else (keep & use, ~keep & use)
    centers = []
    for group in (in_mask, out_mask):
        count = int(group.sum()) * num_queries
        centers.append(float(np.sum(phi, where=group[..., None])) / max(count, 1))
    parts = {"in": [], "out": []}
    pooled = {"in": np.zeros(3), "out": np.zeros(3)}  # count, Σ(v − c), Σ(v − c)²
    step = max(1, _CHUNK_ELEMENTS // (num_models * num_queries))
    for n0 in range(0, num_examples, step):
        n1 = min(num_examples, n0 + step)
        groups = _loo.sort_groups(phi[:, n0:n1], in_mask[:, n0:n1], out_mask[:, n0:n1])
        for name, group, center in zip(("in", "out"), groups, centers, strict=True):
            parts[name].append((_loo.order_stats(group), _loo.group_moments(group)))
            dev = group.values - center
            pooled[name] += [group.count.sum(), np.nansum(dev), np.nansum(dev * dev)]

    def joined(name, i, cls):
        pieces = [p[i] for p in parts[name]]
        fields = dataclasses.fields(cls)
        return cls(*(np.concatenate([getattr(p, f.name) for p in pieces]) for f in fields))

    def pool(name, center):
        count, s1, s2 = pooled[name]
        return _Pooled(int(count), center, float(s1), float(s2))

    return _Summary(
        joined("in", 0, _loo.OrderStats),
        joined("out", 0, _loo.OrderStats),
        joined("in", 1, _loo.GroupMoments),
        joined("out", 1, _loo.GroupMoments),
        pool("in", centers[0]),
        pool("out", centers[1]),
    )


def _coverage_error(
    left: np.ndarray, which: str, targets, per_example_sigma: bool
) -> AttackUndefined | None:
    """The error to raise if some example has too few shadow models of a group, else None.

    Args:
      left: [T, N] group sizes once each target's own value is removed.
      which: "IN" or "OUT".
      targets: [T] model indices (None: an external target).
      per_example_sigma: the variant estimates σ per example, which needs 2 values.
    """
    for minimum, what in ((1, "no"), (2 if per_example_sigma else 1, "a single")):
        short = left < minimum
        if not short.any():
            continue
        i = int(np.flatnonzero(short.any(axis=1))[0])
        where = "" if targets is None else f" when model {int(targets[i])} is the target"
        problem = (
            f"so LiRA cannot fit their {which} distribution"
            if minimum == 1
            else "too few for a per-example σ (use a fixed-variance variant)"
        )
        return AttackUndefined(
            f"{int(short[i].sum())} of {left.shape[1]} examples have {what} {which} shadow "
            f"model{where}, {problem}. Train more shadow models, or use a pkeep nearer 0.5 "
            "(a balanced keep mask puts every example IN exactly pkeep*M models)."
        )
    return None


def _removal(
    phi: np.ndarray, rows: np.ndarray, drop: np.ndarray, target_in: np.ndarray, n0: int, n1: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The value each target's IN group and OUT group lose on examples n0:n1.

    A target's own value leaves its group; the dropped model's value (`shadow_sets`)
    leaves the other group, so each group loses one value whenever it has one to lose.

    Args:
      phi: [M, N, A] φ of every model.
      rows: [t] the targets' rows in phi.
      drop: [t, N] dropped model per (target, example), −1 for none.
      target_in: [t, N] bool membership of the targets.
      n0, n1: the example range.

    Returns:
      (v_in [t, n, A], r_in [t, n], v_out [t, n, A], r_out [t, n]): the removed values and
      whether a value is removed from that group.
    """
    own = phi[rows, n0:n1]
    d = drop[:, n0:n1]
    has = d >= 0
    dropped = phi[np.where(has, d, 0), np.arange(n0, n1)[None, :]]
    tin = target_in[:, n0:n1]
    v_in = np.where(tin[..., None], own, dropped)
    v_out = np.where(tin[..., None], dropped, own)
    return v_in, tin | has, v_out, ~tin | has


def _removed_pooled(summary: _Summary, phi, rows, drop, target_in) -> tuple[np.ndarray, np.ndarray]:
    """Per target, the count and centered sums of every value its groups lose, over ALL
    examples and queries (what the pooled, fixed-variance σ must leave out).

    Returns:
      (in, out), each [T, 3]: count, Σ(v − center), Σ(v − center)².
    """
    num_queries = phi.shape[2]
    sums = {"in": np.zeros((rows.size, 3)), "out": np.zeros((rows.size, 3))}
    step = max(1, _BLOCK_ELEMENTS * 16 // num_queries)
    for i in range(rows.size):
        for n0 in range(0, phi.shape[1], step):
            n1 = min(phi.shape[1], n0 + step)
            v_in, r_in, v_out, r_out = _removal(
                phi, rows[i : i + 1], drop[i : i + 1], target_in[i : i + 1], n0, n1
            )
            for name, v, r, pooled in (
                ("in", v_in, r_in, summary.pooled_in),
                ("out", v_out, r_out, summary.pooled_out),
            ):
                dev = np.where(r[..., None], v - pooled.center, 0.0)
                sums[name][i] += [r.sum() * num_queries, dev.sum(), (dev * dev).sum()]
    return sums["in"], sums["out"]


def _lira_blocks(
    summary: _Summary,
    phi: np.ndarray,
    rows_of: np.ndarray | None,
    target_in: np.ndarray,
    targets,
    variants,
    drop: np.ndarray | None = None,
) -> dict:
    """LiRA scores of T targets, computed in cache-sized blocks of (examples, targets).

    Args:
      summary: statistics of the shadow models (plus the targets if `rows_of` is given).
      phi: [M, N, A] φ array holding the targets' rows.
      rows_of: [T] row of each target in `phi`; each target and its dropped models
        (`drop`) are then removed from the summary (leave-one-out). None: phi holds only
        the (external) targets and the summary is used whole.
      target_in: [T, N] bool, whether each target trained on each example.
      targets: [T] model indices for messages (None for an unnamed external target).
      variants: (online, fix_variance) pairs wanted.
      drop: [T, N] the extra model each target drops from the other group
        (`shadow_sets.equalizing_drop`); required with `rows_of`.

    Returns:
      (online, fix_variance) -> [T, N] scores, or the AttackUndefined to raise.
    """
    num_targets, num_examples = target_in.shape
    num_queries = phi.shape[2]
    removes = rows_of is not None
    a_count = summary.moments_in.count[::num_queries][None]
    b_count = summary.moments_out.count[::num_queries][None]
    if removes:
        has = drop >= 0
        in_left, out_left = a_count - (target_in | has), b_count - (~target_in | has)
    else:
        in_left = np.broadcast_to(a_count, target_in.shape)
        out_left = np.broadcast_to(b_count, target_in.shape)
    out = {}
    for online, fixed in variants:
        error = _coverage_error(out_left, "OUT", targets, not fixed)
        if online and error is None:
            error = _coverage_error(in_left, "IN", targets, not fixed)
        out[online, fixed] = error if error else np.empty((num_targets, num_examples))
    todo = [v for v in variants if not isinstance(out[v], AttackUndefined)]
    if not todo:
        return out
    rows_of = np.arange(num_targets) if rows_of is None else rows_of
    pooled_in = pooled_out = np.zeros((num_targets, 3))
    if removes and any(fixed for _, fixed in todo):
        pooled_in, pooled_out = _removed_pooled(summary, phi, rows_of, drop, target_in)
    t_step = min(num_targets, 32)
    n_step = max(1, _BLOCK_ELEMENTS // (t_step * num_queries))
    for t0 in range(0, num_targets, t_step):
        t1 = min(num_targets, t0 + t_step)
        for n0 in range(0, num_examples, n_step):
            n1 = min(num_examples, n0 + n_step)

            def columns(x, count=t1 - t0):
                """[t, n, A] -> rows (example, query) x targets; [t, n] -> repeated."""
                if x.ndim == 2:
                    return np.repeat(x.T, num_queries, axis=0)
                return x.reshape(count, -1).T

            values = columns(phi[rows_of[t0:t1], n0:n1])
            if removes:
                removal = _removal(phi, rows_of[t0:t1], drop[t0:t1], target_in[t0:t1], n0, n1)
                v_in, r_in, v_out, r_out = (columns(x) for x in removal)
            else:
                v_in = v_out = values
                r_in = r_out = np.zeros(values.shape, bool)
            block = summary.rows(slice(n0 * num_queries, n1 * num_queries))
            per_query = _lira_columns(
                block,
                values,
                (v_in, r_in, pooled_in[t0:t1]),
                (v_out, r_out, pooled_out[t0:t1]),
                todo,
            )
            for v, res in per_query.items():
                out[v][t0:t1, n0:n1] = res.T.reshape(t1 - t0, n1 - n0, num_queries).mean(-1)
    return out


def _lira_columns(
    summary: _Summary, values: np.ndarray, removed_in: tuple, removed_out: tuple, variants
) -> dict:
    """Per-column LiRA statistics of Q targets.

    Args:
      summary: statistics of the models that serve as shadows, before removals.
      values: [R, Q] φ of the targets.
      removed_in, removed_out: for each group, (values [R, Q] removed from each column,
        [R, Q] bool whether one is removed, [Q, 3] count and centered sums of everything
        the group loses over all columns, for the pooled σ).
      variants: (online, fix_variance) pairs wanted; the groups they use must be non-empty
        in every column once the values are removed (checked by `_lira_blocks`).

    Returns:
      (online, fix_variance) -> [R, Q] per-query score.
    """
    groups = {
        True: (summary.stats_in, summary.moments_in, summary.pooled_in, *removed_in),
        False: (summary.stats_out, summary.moments_out, summary.pooled_out, *removed_out),
    }

    def median(is_in: bool):
        stats, _, _, v, r, _ = groups[is_in]
        return _loo.loo_median(stats, v, r)

    def sigma(is_in: bool, fixed: bool):
        """σ (+ eps) of the IN or OUT group: [Q] if fixed, else [R, Q]."""
        stats, moments, pooled, v, r, lost = groups[is_in]
        if fixed:
            var = pooled.loo_var(lost[:, 0], lost[:, 1], lost[:, 2])
        else:
            var = _loo.loo_moments(moments, v, r, stats)[2]
        return np.sqrt(var) + _SIGMA_EPS

    mu_out = median(False)
    mu_in = median(True) if any(online for online, _ in variants) else None
    out, sigmas = {}, {}
    for online, fixed in variants:
        if (False, fixed) not in sigmas:
            sigmas[False, fixed] = sigma(False, fixed)
        sigma_out = sigmas[False, fixed]
        if not online:
            # −log P[Z > φ], Z ~ N(μ_out, σ_out).
            out[online, fixed] = -scipy.special.log_ndtr((mu_out - values) / sigma_out)
            continue
        sigma_in = sigma(True, fixed)
        # log N(φ; μ_in, σ_in) − log N(φ; μ_out, σ_out).
        z_in = (values - mu_in) / sigma_in
        z_out = (values - mu_out) / sigma_out
        out[online, fixed] = 0.5 * (z_out * z_out - z_in * z_in) + np.log(sigma_out / sigma_in)
    return out


def lira_scores(
    target_phi: np.ndarray,
    shadow_phi: np.ndarray,
    shadow_keep: np.ndarray,
    *,
    online: bool = True,
    fix_variance: bool = False,
    shadow_mask: np.ndarray | None = None,
) -> np.ndarray:
    """LiRA membership scores of one target model against explicit shadow models.

    Args:
      target_phi: [N, A] φ of the target model on N examples under A queries.
      shadow_phi: [S, N, A] φ of S shadow models on the same examples and queries.
      shadow_keep: [S, N] bool, whether shadow s trained on example n.
      online: use both IN and OUT Gaussians (likelihood ratio); otherwise the one-sided
        test against the OUT Gaussian only.
      fix_variance: one global σ per distribution instead of a per-example σ.
      shadow_mask: [S, N] bool, whether shadow s is used for example n (default: every
        shadow for every example). The pooled σ of `fix_variance` pools the used values.

    Returns:
      [N] float64 scores, higher = more likely a member of the target's training set.

    Raises:
      ValueError: on inconsistent shapes or NaN inputs; AttackUndefined (a ValueError) on
        examples with no OUT shadow (or, online, no IN shadow).
    """
    target_phi = np.asarray(target_phi, dtype=np.float64)
    shadow_phi = np.asarray(shadow_phi, dtype=np.float64)
    keep = np.asarray(shadow_keep, dtype=bool)
    if shadow_phi.ndim != 3 or target_phi.shape != shadow_phi.shape[1:]:
        raise ValueError(
            f"Expected target_phi [N, A] and shadow_phi [S, N, A], got {target_phi.shape=} "
            f"and {shadow_phi.shape=}."
        )
    if keep.shape != shadow_phi.shape[:2]:
        raise ValueError(f"shadow_keep.shape={keep.shape} must be [S, N]={shadow_phi.shape[:2]}.")
    if shadow_mask is not None:
        shadow_mask = np.asarray(shadow_mask)
        if shadow_mask.dtype != bool or shadow_mask.shape != keep.shape:
            raise ValueError(
                f"shadow_mask must be a bool [S, N]={keep.shape} array, got "
                f"{shadow_mask.dtype} {shadow_mask.shape}."
            )
    if np.isnan(target_phi).any() or np.isnan(shadow_phi).any():
        raise ValueError("target_phi / shadow_phi contain NaN; check the stored logits.")
    variant = (online, fix_variance)
    result = _lira_blocks(
        _summarize(shadow_phi, keep, shadow_mask),
        target_phi[None],
        None,
        np.zeros((1, target_phi.shape[0]), bool),
        None,
        [variant],
    )[variant]
    if isinstance(result, AttackUndefined):
        raise result
    return result[0]


def lira_attack(
    bank: SignalBank,
    targets: np.ndarray,
    *,
    online: bool = True,
    fix_variance: bool = False,
    seed: int = 0,
) -> AttackOutput:
    """Leave-one-model-out LiRA: each target against equal-size IN/OUT shadow sets.

    Args:
      bank: a `SignalBank` with phi.
      targets: [T] target model indices.
      online: likelihood ratio of IN and OUT Gaussians, else the one-sided OUT test.
      fix_variance: one pooled σ per distribution instead of per-example σ.
      seed: chooses the shadows each (target, example) drops to equalise its groups
        (`shadow_sets`).

    Returns:
      `AttackOutput` with scores [T, N], equal for each target t to
      `lira_scores(phi[t], phi, keep, shadow_mask=shadow_sets.target_shadow_mask(keep, t,
      seed))` (up to float rounding).

    Raises:
      AttackUndefined: if an example has no OUT (or, online, no IN) shadow model.
    """
    bank.require(["phi"], "lira")
    targets = bank.check_targets(targets)
    key = ("lira_scores", targets.tobytes(), int(seed))
    scores = bank.cached(key, lambda: _lira_all_variants(bank, targets, seed))[online, fix_variance]
    if isinstance(scores, AttackUndefined):
        raise scores
    return AttackOutput(scores)


def _lira_all_variants(bank: SignalBank, targets: np.ndarray, seed: int) -> dict:
    drop = shadow_sets.cached_drop(bank, targets, seed)
    if drop is not None:  # Balanced mask: summarise once, remove one value per group.
        summary = bank.cached(("lira_summary",), lambda: _summarize(bank.phi, bank.keep))
        return _lira_blocks(
            summary, bank.phi, targets, bank.keep[targets], targets, _VARIANTS, drop
        )
    # Any other mask: each target's own shadow sets, summarised one target at a time.
    out = {v: np.empty((targets.size, bank.num_examples)) for v in _VARIANTS}
    for i, use in enumerate(shadow_sets.target_shadow_masks(bank, targets, seed)):
        one = _lira_blocks(
            _summarize(bank.phi, bank.keep, use),
            bank.phi[targets[i : i + 1]],
            None,
            bank.keep[targets[i : i + 1]],
            targets[i : i + 1],
            _VARIANTS,
        )
        for v, res in one.items():
            if isinstance(out[v], AttackUndefined) or isinstance(res, AttackUndefined):
                out[v] = out[v] if isinstance(out[v], AttackUndefined) else res
            else:
                out[v][i] = res[0]
    return out


def global_threshold_scores(target_phi: np.ndarray) -> np.ndarray:
    """Global-threshold baseline: the target's φ averaged over queries.

    Args:
      target_phi: [N, A] φ of the target model.

    Returns:
      [N] float64 scores, higher = more likely a member.
    """
    target_phi = np.asarray(target_phi, dtype=np.float64)
    if target_phi.ndim != 2:
        raise ValueError(f"target_phi must be [N, A], got shape {target_phi.shape}.")
    return target_phi.mean(axis=-1)


def global_threshold_attack(
    bank: SignalBank, targets: np.ndarray, *, seed: int = 0
) -> AttackOutput:
    """`global_threshold_scores` of each target (ignores the shadow models).

    Args:
      bank: a `SignalBank` with phi.
      targets: [T] target model indices.
      seed: unused (no shadow model is used).

    Returns:
      `AttackOutput` with scores [T, N].
    """
    del seed
    bank.require(["phi"], "global_threshold")
    targets = bank.check_targets(targets)
    return AttackOutput(bank.phi[targets].mean(axis=-1))

"""Shadow sets whose IN and OUT sizes do not depend on the target's membership.

Design notes: in leave-one-model-out evaluation every model is in turn the target and the
others are its shadows. With a balanced keep mask (every example IN for K of M models, as
`data.keep_mask` and every store give), taking the target out leaves a member K − 1 IN and
M − K OUT shadows and a non-member K IN and M − K − 1 OUT shadows. Statistics fitted from
counts that depend on the target's own membership score members and non-members
differently even when the models carry no membership signal at all (with 16 models,
LiRA online scored AUC 0.47 on such stores). The LiRA reference (`plot.py`) avoids this
by cutting every example's IN and OUT lists to one common length. The rule here:

  For target t, every example gets exactly L_in = min_n count_in[n] − 1 IN and
  L_out = min_n count_out[n] − 1 OUT shadows, drawn at random (from the seed) among the
  models other than t. The sizes are constants of the keep mask, so they cannot depend on
  t's membership of any example, whatever the mask.

  * Balanced mask (the usual case, `is_balanced`): the rule drops exactly one more model,
    from the group t is not in. `equalizing_drop(keep, targets, seed)` → [T, N] its index,
    uniform in that group, from `default_rng([seed, _STREAM, t])`, so a target's shadows
    depend only on (keep, seed, t), not on which other targets are evaluated with it.
    Every group then loses exactly one value per (target, example) — the target's own or
    the dropped model's — which lets the attacks keep their "summarise all M models once,
    subtract one value per target" form (`_loo`, `group_removals`).
  * Any other mask: `equalized_shadow_mask(keep, [t], seed)`, the general form of the rule
    (the attacks then fit each target's statistics from its mask).
  * `equalized_shadow_mask(keep, excluded, seed)` with a set F of held-out models (Shokri's
    folds, RMIA's paired model): L_in = min_n count_in[n] − |F| and likewise OUT.
  * `target_shadow_mask(keep, t, seed)` → [M, N] the shadows of target t, by whichever form
    applies: what every attack of `lira_jax.attacks` uses, and what tests refit against.

The cost, for a balanced mask, is one shadow per group: 2 of M models. For an unbalanced
mask every example is cut to the sparsest example's counts, as the reference does.

External targets (a bank whose last E rows hold models the store did not train, its
`num_external`; see `lira_jax.attacks.bank`): an external target is not one of the store's
models, so nothing needs to be left out for it. Its shadows are every store model for every
example (rows [0, M − E), whatever their membership), never an external row; the sizes are
then the store's own counts, which cannot depend on the external target's membership. The
functions below that take a bank follow this rule: `cached_drop` gives None (there is no
drop), `target_shadow_masks` yields the store rows, and `fold_shadow_mask` applies the
equal-size rule among the store rows to the held-out store models only (none for a fold of
external targets: all store rows).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "cached_drop",
    "equalized_shadow_mask",
    "fold_shadow_mask",
    "equalizing_drop",
    "group_orders",
    "group_removals",
    "is_balanced",
    "shadow_group_sums",
    "shadow_mask",
    "target_shadow_mask",
    "target_shadow_masks",
]

_STREAM = 0x5EAD  # separates these draws from other uses of the same seed


def _as_keep(keep: np.ndarray) -> np.ndarray:
    keep = np.asarray(keep)
    if keep.dtype != bool or keep.ndim != 2:
        raise ValueError(f"keep must be a bool [M, N] array, got {keep.dtype} {keep.shape}.")
    return keep


def is_balanced(keep: np.ndarray) -> bool:
    """Whether every example is IN for the same number of models."""
    count_in = _as_keep(keep).sum(axis=0)
    return bool(count_in.size == 0 or (count_in == count_in[0]).all())


def group_orders(keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each example's IN models and OUT models, in increasing model index.

    Args:
      keep: [M, N] bool.

    Returns:
      (in_order, out_order), each [M, N] int64: column n of in_order starts with the
      count_in[n] models that trained on n; out_order likewise with the OUT models.
    """
    keep = _as_keep(keep)
    return np.argsort(~keep, axis=0, kind="stable"), np.argsort(keep, axis=0, kind="stable")


def equalizing_drop(
    keep: np.ndarray,
    targets: np.ndarray,
    seed: int = 0,
    orders: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """For a balanced mask, the extra shadow each (target, example) drops.

    Args:
      keep: [M, N] bool, balanced (`is_balanced`).
      targets: [T] target model indices.
      seed: the draw for target t uses `np.random.default_rng([seed, _STREAM, t])`.
      orders: `group_orders(keep)` if already computed.

    Returns:
      [T, N] int64 model index, uniform among the group (IN or OUT) that target t is NOT in
      for example n; −1 where that group is empty (nothing to drop).

    Raises:
      ValueError: on an unbalanced mask (use `target_shadow_mask`) or bad targets.
    """
    keep = _as_keep(keep)
    if not is_balanced(keep):
        raise ValueError(
            "equalizing_drop needs a balanced keep mask (every example IN for the same number "
            "of models); use target_shadow_mask for other masks."
        )
    targets = np.asarray(targets, dtype=np.int64).reshape(-1)
    num_models, num_examples = keep.shape
    if targets.size and (targets.min() < 0 or targets.max() >= num_models):
        raise ValueError(f"targets must be model indices in [0, {num_models}), got {targets}.")
    in_order, out_order = group_orders(keep) if orders is None else orders
    count_in = keep.sum(axis=0)
    count_out = num_models - count_in
    cols = np.arange(num_examples)
    drop = np.empty((targets.size, num_examples), dtype=np.int64)
    for i, t in enumerate(targets):
        u = np.random.default_rng([seed, _STREAM, int(t)]).random(num_examples)
        target_in = keep[t]
        other = np.where(target_in, count_out, count_in)
        pick = np.minimum((u * other).astype(np.int64), np.maximum(other - 1, 0))
        chosen = np.where(target_in, out_order[pick, cols], in_order[pick, cols])
        drop[i] = np.where(other > 0, chosen, -1)
    return drop


def shadow_mask(keep: np.ndarray, target: int, drop: np.ndarray) -> np.ndarray:
    """The shadows of `target` for every example: all models but the target and drop[n].

    Args:
      keep: [M, N] bool.
      target: the target model index.
      drop: [N] one row of `equalizing_drop` for this target (−1: none).

    Returns:
      [M, N] bool, True where model m is a shadow of the target for example n.
    """
    keep = _as_keep(keep)
    mask = np.ones(keep.shape, bool)
    mask[target] = False
    cols = np.flatnonzero(drop >= 0)
    mask[drop[cols], cols] = False
    return mask


def equalized_shadow_mask(keep: np.ndarray, excluded: np.ndarray, seed: int = 0) -> np.ndarray:
    """Shadows of every example when the models `excluded` are held out, equal-size groups.

    Every example gets exactly L_in = min_n count_in[n] − |F| IN and L_out = min_n
    count_out[n] − |F| OUT shadows (F = `excluded`; 0 if negative), chosen at random among
    the models not in F. The sizes are constants of the mask, so they do not depend on how
    the held-out models' memberships fall.

    Args:
      keep: [M, N] bool.
      excluded: [F] distinct model indices held out (a target, a fold of targets, ...).
      seed: the draw uses `np.random.default_rng([seed, _STREAM, *sorted(excluded)])`.

    Returns:
      [M, N] bool, True where model m serves as a shadow for example n.
    """
    keep = _as_keep(keep)
    num_models, num_examples = keep.shape
    excluded = np.unique(np.asarray(excluded, dtype=np.int64).reshape(-1))
    if excluded.size and (excluded[0] < 0 or excluded[-1] >= num_models):
        raise ValueError(f"excluded must be model indices in [0, {num_models}), got {excluded}.")
    held = np.zeros(num_models, bool)
    held[excluded] = True
    rng = np.random.default_rng([seed, _STREAM, *excluded.tolist()])
    priority = rng.random((num_models, num_examples))
    mask = np.zeros(keep.shape, bool)
    for side in (keep, ~keep):
        allowed = side & ~held[:, None]
        size = max(int(side.sum(axis=0).min(initial=num_models)) - excluded.size, 0)
        order = np.argsort(np.where(allowed, priority, np.inf), axis=0)
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(num_models)[:, None], axis=0)
        mask |= allowed & (rank < size)
    return mask


def target_shadow_mask(keep: np.ndarray, target: int, seed: int = 0) -> np.ndarray:
    """The shadows of `target` for every example, as every attack of this package uses them.

    Args:
      keep: [M, N] bool.
      target: the target model index.
      seed: the attack's seed.

    Returns:
      [M, N] bool: `shadow_mask(keep, target, equalizing_drop(keep, [target], seed)[0])`
      for a balanced mask, else `equalized_shadow_mask(keep, [target], seed)`.
    """
    keep = _as_keep(keep)
    if is_balanced(keep):
        return shadow_mask(keep, target, equalizing_drop(keep, [target], seed)[0])
    return equalized_shadow_mask(keep, [target], seed)


def _external(bank_or_keep) -> int:
    return int(getattr(bank_or_keep, "num_external", 0))


def _store_rows_mask(keep: np.ndarray, num_external: int) -> np.ndarray:
    """[M, N] True on the store rows, False on the external rows."""
    mask = np.ones(keep.shape, bool)
    mask[keep.shape[0] - num_external :] = False
    return mask


def fold_shadow_mask(bank_or_keep, excluded: np.ndarray, seed: int = 0) -> np.ndarray:
    """The shadows when the models `excluded` are held out, as the attacks that hold out a
    fold of targets (Shokri, the augmentation attack model, RMIA's paired model) use them.

    Args:
      bank_or_keep: a `SignalBank` / `LabelBank`, or a keep mask [M, N].
      excluded: [F] model indices held out.
      seed: as in `equalized_shadow_mask`.

    Returns:
      [M, N] bool: `equalized_shadow_mask(keep, excluded, seed)` for a bank without external
      rows; with external rows (module docstring), the equal-size rule among the store rows
      for the excluded store models (all store rows if there are none), external rows False.
    """
    external = _external(bank_or_keep)
    keep = _as_keep(bank_or_keep.keep if hasattr(bank_or_keep, "keep") else bank_or_keep)
    if not external:
        return equalized_shadow_mask(keep, excluded, seed)
    first = keep.shape[0] - external
    excluded = np.asarray(excluded, dtype=np.int64).reshape(-1)
    held = excluded[excluded < first]
    mask = _store_rows_mask(keep, external)
    if held.size:
        mask[:first] = equalized_shadow_mask(keep[:first], held, seed)
    return mask


class _KeepCache:
    """A keep mask with the `cached` memo of a `SignalBank`, for callers without a bank."""

    def __init__(self, keep: np.ndarray):
        self.keep = _as_keep(keep)
        self._cache: dict = {}

    def cached(self, key, compute):
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]


def _with_cache(bank_or_keep):
    return bank_or_keep if hasattr(bank_or_keep, "cached") else _KeepCache(bank_or_keep)


def cached_drop(bank_or_keep, targets: np.ndarray, seed: int) -> np.ndarray | None:
    """`equalizing_drop` of a keep mask, memoised on a `SignalBank`; None if not balanced.

    Args:
      bank_or_keep: a `SignalBank` (draws are memoised on it) or a keep mask [M, N].
      targets: [T] validated target indices.
      seed: the attack's seed.

    Returns:
      [T, N] int64 dropped model per (target, example) (−1 where none), or None when the
      mask is unbalanced, or the bank has external rows, and the caller must use
      `target_shadow_masks`.
    """
    bank = _with_cache(bank_or_keep)
    if _external(bank):  # nothing is dropped for an external target (module docstring)
        return None
    if not bank.cached(("is_balanced",), lambda: is_balanced(bank.keep)):
        return None
    orders = bank.cached(("group_orders",), lambda: group_orders(bank.keep))
    return bank.cached(
        ("equalizing_drop", np.asarray(targets).tobytes(), int(seed)),
        lambda: equalizing_drop(bank.keep, targets, seed, orders),
    )


def target_shadow_masks(bank_or_keep, targets: np.ndarray, seed: int):
    """Yields `target_shadow_mask(keep, t, seed)` for each target (draws memoised on a bank);
    for the external targets of a bank, the store rows (module docstring)."""
    bank = _with_cache(bank_or_keep)
    external = _external(bank)
    if external:
        first = bank.keep.shape[0] - external
        for t in targets:
            if t < first:
                raise ValueError(
                    f"model {int(t)} is a store model of a bank with external targets; attack "
                    "store models leave-one-out in a bank without external rows."
                )
            yield _store_rows_mask(bank.keep, external)
        return
    drop = cached_drop(bank, targets, seed)
    for i, t in enumerate(targets):
        if drop is None:
            yield equalized_shadow_mask(bank.keep, [t], seed)
        else:
            yield shadow_mask(bank.keep, t, drop[i])


def _trailing(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
    """A [.., N] mask with singleton axes appended to broadcast against `values`' trailing
    axes (values [M, N, ...])."""
    return mask.reshape(mask.shape + (1,) * (values.ndim - 2))


def group_removals(
    values: np.ndarray, keep: np.ndarray, targets: np.ndarray, drop: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What each target's IN group and OUT group lose, for a per-model signal [M, N, ...].

    For a balanced mask: the target's own value leaves the group it is in; the dropped
    model's value leaves the other group. Sums over a group's shadows are Σ_group − v·r.

    Args:
      values: [M, N, ...] per-model signal (e.g. [M, N, A] per query).
      keep: [M, N] bool.
      targets: [T] target indices.
      drop: [T, N] from `equalizing_drop` (−1: nothing dropped).

    Returns:
      (v_in, r_in, v_out, r_out): v_in, v_out [T, N, ...] the value removed from the IN
      (OUT) group; r_in, r_out [T, N] bool, whether one is removed.
    """
    values = np.asarray(values)
    own = values[targets]
    has = drop >= 0
    dropped = values[np.where(has, drop, 0), np.arange(values.shape[1])[None, :]]
    target_in = keep[targets]
    v_in = np.where(_trailing(target_in, values), own, dropped)
    v_out = np.where(_trailing(target_in, values), dropped, own)
    return v_in, target_in | has, v_out, ~target_in | has


def shadow_group_sums(
    values: np.ndarray, bank_or_keep, targets: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per target and example, the sum and count of `values` over its IN and OUT shadows.

    Args:
      values: [M, N, ...] per-model signal (trailing axes, e.g. queries, are summed
        separately); bool or integer values give integer sums.
      bank_or_keep: a `SignalBank` or `LabelBank` (draws are memoised on it) or the keep
        mask [M, N].
      targets: [T] target indices.
      seed: the attack's seed.

    Returns:
      (sum_in, count_in, sum_out, count_out): sums [T, N, ...], counts [T, N] int64.
    """
    bank = _with_cache(bank_or_keep)
    keep = bank.keep
    values = np.asarray(values)
    if values.ndim < 2 or values.shape[:2] != keep.shape:
        raise ValueError(
            f"values must be [M, N, ...] with [M, N]={keep.shape}, got {values.shape}."
        )
    targets = np.asarray(targets, dtype=np.int64).reshape(-1)
    drop = cached_drop(bank, targets, seed)
    if drop is not None:
        v_in, r_in, v_out, r_out = group_removals(values, keep, targets, drop)
        total_in = np.sum(values, axis=0, where=_trailing(keep, values))
        total_out = np.sum(values, axis=0, where=_trailing(~keep, values))
        sum_in = total_in - np.where(_trailing(r_in, values), v_in, 0)
        sum_out = total_out - np.where(_trailing(r_out, values), v_out, 0)
        count_in = keep.sum(axis=0) - r_in.astype(np.int64)
        count_out = (~keep).sum(axis=0) - r_out.astype(np.int64)
        return sum_in, count_in, sum_out, count_out
    sums_in, sums_out = [], []
    shape = (targets.size, keep.shape[1])
    count_in, count_out = np.empty(shape, np.int64), np.empty(shape, np.int64)
    for i, use in enumerate(target_shadow_masks(bank, targets, seed)):
        sums_in.append(np.sum(values, axis=0, where=_trailing(use & keep, values)))
        sums_out.append(np.sum(values, axis=0, where=_trailing(use & ~keep, values)))
        count_in[i] = (use & keep).sum(axis=0)
        count_out[i] = (use & ~keep).sum(axis=0)
    return np.stack(sums_in), count_in, np.stack(sums_out), count_out

"""Leave-one-model-out statistics of shadow signals, vectorised over examples and targets.

Design notes: in the leave-one-model-out protocol every model is in turn the target and
all others are its shadows. Recomputing per-example statistics from the M − 1 shadows for
each of T targets costs T passes over [M, N, A] values (and T sorts for the medians).
Instead we summarise all M models once per column (one column = one example, or one
(example, query) pair) and then remove the target's own value, which costs O(N·A) per
target:

  * `sort_groups` sorts each column's IN values and OUT values (two arrays [R, W],
    rows padded with NaN beyond the group's count). Removing the target's value v_t from
    a sorted column shifts every order statistic at or after v_t's first occurrence by
    one, so the j-th smallest remaining value is S[j] if S[j] < v_t else S[j + 1]; with
    ties this is still exact because equal values are interchangeable. A leave-one-out
    median therefore needs only six order statistics per column (`order_stats`), taken
    once, and a few comparisons per target (`loo_median`).
  * Means and variances come from per-column sums of (v − c) and (v − c)², c being the
    column's group mean over all models (centering keeps the subtraction of the target's
    term accurate); a column whose remaining values are all equal (found from its
    smallest and largest remaining values) gets variance exactly 0, not rounding noise.
  * `count_below` is a binary search run on all columns at once (⌈log2(W+1)⌉ gathers),
    for empirical CDFs.

Columns are arranged example-major: for values [M, N, A] the row index is n·A + a, which
matches `values[t].reshape(-1)`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = [
    "GroupMoments",
    "OrderStats",
    "SortedGroup",
    "count_below",
    "group_moments",
    "loo_median",
    "loo_moments",
    "order_stats",
    "sort_groups",
]

_CHUNK_ELEMENTS = 1 << 22


@dataclasses.dataclass(frozen=True)
class SortedGroup:
    """The values of one group (IN or OUT) of every column, sorted.

    Attributes:
      values: [R, W] float64, row r ascending in its first count[r] entries, NaN after.
      count: [R] int64 number of group members in each column.
    """

    values: np.ndarray
    count: np.ndarray


@dataclasses.dataclass(frozen=True)
class GroupMoments:
    """Centered sums of one group per column: the group mean over all models and
    s1 = Σ (v − center), s2 = Σ (v − center)² over the group's members. All [R]."""

    count: np.ndarray
    center: np.ndarray
    s1: np.ndarray
    s2: np.ndarray


def _columns(values: np.ndarray, n0: int, n1: int) -> np.ndarray:
    """values[:, n0:n1] ([M, n, ...]) as rows [n·A, M], float64."""
    block = np.asarray(values[:, n0:n1], dtype=np.float64)
    m = block.shape[0]
    return np.moveaxis(block.reshape(m, n1 - n0, -1), 0, -1).reshape(-1, m)


def _row_mask(in_mask: np.ndarray, n0: int, n1: int, per_example: int) -> np.ndarray:
    """in_mask[:, n0:n1] ([M, n]) as rows [n·A, M] (each example repeated A times)."""
    return np.repeat(np.asarray(in_mask[:, n0:n1]).T, per_example, axis=0)


def sort_groups(
    values: np.ndarray, in_mask: np.ndarray, out_mask: np.ndarray | None = None
) -> tuple[SortedGroup, SortedGroup]:
    """Sorts each column's IN values and OUT values.

    Args:
      values: [M, N] or [M, N, A] signal of every model.
      in_mask: [M, N] bool, True where model m's value belongs to the IN group.
      out_mask: [M, N] bool, the OUT group; default ~in_mask (every model in one group).

    Returns:
      (IN, OUT) `SortedGroup`s with R = N·A rows.
    """
    in_mask = np.asarray(in_mask, dtype=bool)
    out_mask = ~in_mask if out_mask is None else np.asarray(out_mask, dtype=bool)
    num_models, num_examples = in_mask.shape
    per_example = int(np.prod(values.shape[2:], dtype=np.int64))
    count_in = np.repeat(in_mask.sum(axis=0), per_example).astype(np.int64)
    count_out = np.repeat(out_mask.sum(axis=0), per_example).astype(np.int64)
    rows = num_examples * per_example
    width_in = int(count_in.max(initial=0))
    width_out = int(count_out.max(initial=0))
    sorted_in = np.empty((rows, width_in))
    sorted_out = np.empty((rows, width_out))
    step = max(1, _CHUNK_ELEMENTS // max(1, num_models * per_example))
    for n0 in range(0, num_examples, step):
        n1 = min(num_examples, n0 + step)
        cols = _columns(values, n0, n1)
        r0, r1 = n0 * per_example, n1 * per_example
        for mask, out, width in ((in_mask, sorted_in, width_in), (out_mask, sorted_out, width_out)):
            rows_mask = _row_mask(mask, n0, n1, per_example)
            out[r0:r1] = np.sort(np.where(rows_mask, cols, np.nan), axis=1)[:, :width]
    return SortedGroup(sorted_in, count_in), SortedGroup(sorted_out, count_out)


def group_moments(group: SortedGroup) -> GroupMoments:
    """Centered sums of a sorted group (NaN center for empty columns)."""
    count = group.count
    total = np.nansum(group.values, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        center = total / count
    dev = group.values - center[:, None]
    return GroupMoments(count, center, np.nansum(dev, axis=1), np.nansum(dev * dev, axis=1))


def loo_moments(
    moments: GroupMoments,
    removed_values: np.ndarray,
    removed: np.ndarray,
    stats: OrderStats | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group mean and population variance (ddof=0) after removing one value per column.

    Args:
      moments: the group's `GroupMoments` ([R]).
      removed_values: [R, Q] the value each of Q targets removes from each column.
      removed: [R, Q] bool, whether the target belongs to the group in that column (if not,
        nothing is removed).
      stats: the group's `OrderStats`; if given, the variance is exactly 0 where all
        remaining values are equal (otherwise the subtraction can leave ~1e-32 there).

    Returns:
      (count, mean, var), each [R, Q]; mean and var are NaN where count is 0, var is 0
      where count is 1.
    """
    count = moments.count[:, None] - removed
    dev = np.where(removed, removed_values - moments.center[:, None], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        inv = 1.0 / count
        shift = (moments.s1[:, None] - dev) * inv
        sq = (moments.s2[:, None] - dev * dev) * inv
        var = np.maximum(sq - shift * shift, 0.0)
    var[count == 1] = 0.0
    if stats is not None:
        # Rounding leaves ~1e-16·sq instead of an exact 0 when every remaining value is
        # equal; check those few candidates exactly. Removing v changes the smallest
        # (largest) remaining value only if v is the smallest (largest).
        r, q = np.nonzero((var <= 1e-12 * sq) & (count > 1))
        if r.size:
            v, rem = removed_values[r, q], removed[r, q]
            smallest = np.where(rem & (v == stats.first[r]), stats.second[r], stats.first[r])
            largest = np.where(rem & (v == stats.last[r]), stats.second_last[r], stats.last[r])
            var[r[smallest == largest], q[smallest == largest]] = 0.0
    empty = count <= 0
    mean = moments.center[:, None] + shift
    return count, np.where(empty, np.nan, mean), np.where(empty, np.nan, var)


@dataclasses.dataclass(frozen=True)
class OrderStats:
    """The few order statistics of each column that leave-one-out medians and ranges need.

    With k values per column (0-based S[0..k-1]): `median` of all k; `lo`, `lo_next` =
    S[(k-2)//2], S[(k-2)//2 + 1] and `hi`, `hi_next` = S[(k-1)//2], S[(k-1)//2 + 1] (the
    candidates of the two middle values once one value is removed); `first`, `second`,
    `second_last`, `last` = S[0], S[1], S[k-2], S[k-1]. All [R]; entries whose index falls
    outside 0..k-1 are NaN and never selected for a column with enough values.
    """

    median: np.ndarray
    lo: np.ndarray
    lo_next: np.ndarray
    hi: np.ndarray
    hi_next: np.ndarray
    first: np.ndarray
    second: np.ndarray
    second_last: np.ndarray
    last: np.ndarray


def order_stats(group: SortedGroup) -> OrderStats:
    """Extracts `OrderStats` from a sorted group."""
    values, k = group.values, group.count
    width = values.shape[1]
    rows = np.arange(values.shape[0])

    def at(j):
        ok = (j >= 0) & (j < k)
        if width == 0:
            return np.full(k.shape, np.nan)
        return np.where(ok, values[rows, np.clip(j, 0, width - 1)], np.nan)

    median = np.where(k > 0, (at((k - 1) // 2) + at(k // 2)) / 2.0, np.nan)
    return OrderStats(
        median=median,
        lo=at((k - 2) // 2),
        lo_next=at((k - 2) // 2 + 1),
        hi=at((k - 1) // 2),
        hi_next=at((k - 1) // 2 + 1),
        first=at(np.zeros_like(k)),
        second=at(np.ones_like(k)),
        second_last=at(k - 2),
        last=at(k - 1),
    )


def loo_median(stats: OrderStats, removed_values: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """Median of each column's group values after removing one value (NaN if none left).

    Removing v from a sorted column S of k values leaves k - 1 values whose j-th smallest
    is S[j] if S[j] < v else S[j + 1]; the two middle ones are j = (k-2)//2 and (k-1)//2.

    Args:
      stats: the group's `OrderStats` ([R]).
      removed_values: [R, Q] value removed by each of Q targets.
      removed: [R, Q] bool, whether the value is a member of the group (else no removal).

    Returns:
      [R, Q] float64 medians (mean of the two middle values for an even count).
    """
    v = removed_values
    with np.errstate(invalid="ignore"):
        lo = np.where(stats.lo[:, None] < v, stats.lo[:, None], stats.lo_next[:, None])
        hi = np.where(stats.hi[:, None] < v, stats.hi[:, None], stats.hi_next[:, None])
    return np.where(removed, (lo + hi) / 2.0, stats.median[:, None])


def count_below(group: SortedGroup, queries: np.ndarray, *, inclusive: bool = False) -> np.ndarray:
    """Number of group values below each query, per column (vectorised binary search).

    Args:
      group: a `SortedGroup` ([R, W]).
      queries: [R, Q] values to locate in their row.
      inclusive: count values <= the query instead of < the query.

    Returns:
      [R, Q] int64 counts in [0, count[r]].
    """
    rows, width = group.values.shape
    lo = np.zeros(queries.shape, dtype=np.int64)
    if width == 0:
        return lo
    hi = np.broadcast_to(group.count[:, None], queries.shape).astype(np.int64)
    for _ in range(width.bit_length()):
        active = lo < hi
        if not active.any():
            break
        mid = (lo + hi) // 2
        value = np.take_along_axis(group.values, np.minimum(mid, width - 1), axis=1)
        right = active & ((value <= queries) if inclusive else (value < queries))
        lo = np.where(right, mid + 1, lo)
        hi = np.where(active & ~right, mid, hi)
    return lo

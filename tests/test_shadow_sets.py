"""Equal-size IN/OUT shadow sets: sizes, randomness and independence from the target."""

import numpy as np
import pytest

from lira_jax.attacks import shadow_sets


def _keep(m=12, n=300, seed=0, balanced=True):
    rng = np.random.default_rng(seed)
    if balanced:
        return rng.uniform(size=(m, n)).argsort(0) < m // 2
    keep = rng.random((m, n)) < 0.4
    keep[0], keep[1] = True, False  # every example IN and OUT for some model
    return keep


@pytest.mark.parametrize("balanced", [True, False])
def test_group_sizes_do_not_depend_on_the_targets_membership(balanced):
    keep = _keep(balanced=balanced)
    m = keep.shape[0]
    count_in = keep.sum(0)
    assert shadow_sets.is_balanced(keep) == balanced
    # Every example: min count - 1 IN and OUT shadows (for a balanced mask, count - 1).
    size_in, size_out = count_in.min() - 1, (m - count_in).min() - 1
    for t in range(m):
        mask = shadow_sets.target_shadow_mask(keep, t, seed=7)
        assert not mask[t].any()
        np.testing.assert_array_equal((mask & keep).sum(0), size_in)
        np.testing.assert_array_equal((mask & ~keep).sum(0), size_out)
    if balanced:
        drop = shadow_sets.equalizing_drop(keep, np.arange(m), seed=7)
        for t in range(m):
            # The dropped model is in the group the target is not in.
            assert (keep[drop[t], np.arange(keep.shape[1])] != keep[t]).all()
            np.testing.assert_array_equal(
                shadow_sets.shadow_mask(keep, t, drop[t]),
                shadow_sets.target_shadow_mask(keep, t, seed=7),
            )
    else:
        with pytest.raises(ValueError, match="balanced keep mask"):
            shadow_sets.equalizing_drop(keep, [0])


def test_drop_is_seeded_uniform_and_independent_of_the_other_targets():
    keep = _keep(m=8, n=4000)
    alone = shadow_sets.equalizing_drop(keep, [5], seed=3)
    together = shadow_sets.equalizing_drop(keep, [0, 5, 2], seed=3)
    np.testing.assert_array_equal(alone[0], together[1])
    assert (shadow_sets.equalizing_drop(keep, [5], seed=4) != alone).mean() > 0.5
    # Uniform among the 4 models of the other group: each rank chosen ~1/4 of the time.
    in_order, out_order = shadow_sets.group_orders(keep)
    other = np.where(keep[5], out_order[:4], in_order[:4])  # [4, N]
    rank = (other == alone[0][None]).argmax(0)
    freq = np.bincount(rank, minlength=4) / keep.shape[1]
    np.testing.assert_allclose(freq, 0.25, atol=0.03)


def test_empty_other_group_drops_nothing():
    keep = np.array([[True, True, False], [True, False, True], [False, True, True]])
    drop = shadow_sets.equalizing_drop(keep, [0, 2], seed=0)
    assert keep[drop[0], [0, 1, 2]].tolist() == [False, False, True]
    everyone = np.ones((3, 2), bool)  # nobody is OUT: a member has nothing to drop
    np.testing.assert_array_equal(shadow_sets.equalizing_drop(everyone, [0, 1]), -1)
    with pytest.raises(ValueError, match="targets must be model indices"):
        shadow_sets.equalizing_drop(keep, [3])


@pytest.mark.parametrize("excluded", [[3], [0, 5], [1, 2, 7, 9]])
def test_equalized_mask_loses_as_many_models_as_are_held_out(excluded):
    keep = _keep(balanced=False, seed=2)
    use = shadow_sets.equalized_shadow_mask(keep, excluded, seed=1)
    assert not use[excluded].any()
    f = len(excluded)
    np.testing.assert_array_equal((use & keep).sum(0), max(keep.sum(0).min() - f, 0))
    np.testing.assert_array_equal((use & ~keep).sum(0), max((~keep).sum(0).min() - f, 0))
    np.testing.assert_array_equal(use, shadow_sets.equalized_shadow_mask(keep, excluded[::-1], 1))
    other_seed = shadow_sets.equalized_shadow_mask(keep, excluded, seed=2)
    assert (use != other_seed).any() or not use.any()
    balanced = _keep(balanced=True, seed=2)
    use = shadow_sets.equalized_shadow_mask(balanced, excluded, seed=1)
    np.testing.assert_array_equal((use & balanced).sum(0), 6 - f)
    np.testing.assert_array_equal((use & ~balanced).sum(0), 6 - f)


def test_group_removals_match_a_direct_reading():
    keep = _keep(m=6, n=50)
    values = np.random.default_rng(0).normal(size=keep.shape)
    targets = np.array([1, 4])
    drop = shadow_sets.equalizing_drop(keep, targets, seed=0)
    v_in, r_in, v_out, r_out = shadow_sets.group_removals(values, keep, targets, drop)
    for i, t in enumerate(targets):
        use = shadow_sets.shadow_mask(keep, t, drop[i])
        for group, v, r in ((keep, v_in, r_in), (~keep, v_out, r_out)):
            kept = np.where(use & group, values, 0.0).sum(0)
            full = np.where(group, values, 0.0).sum(0)
            np.testing.assert_allclose(full - np.where(r[i], v[i], 0.0), kept, atol=1e-12)


@pytest.mark.parametrize("balanced", [True, False])
@pytest.mark.parametrize("dtype", [bool, np.float64])
def test_group_sums_of_per_query_values_match_explicit_shadow_masks(balanced, dtype):
    keep = _keep(m=10, n=80, seed=3, balanced=balanced)
    rng = np.random.default_rng(1)
    values = (
        (rng.random(keep.shape + (3,)) < 0.4)
        if dtype is bool
        else rng.normal(size=keep.shape + (3,))
    )
    targets = np.array([0, 4, 9])
    sum_in, count_in, sum_out, count_out = shadow_sets.shadow_group_sums(values, keep, targets, 5)
    assert sum_in.shape == (3, 80, 3) and count_in.shape == (3, 80)
    if dtype is bool:
        assert np.issubdtype(sum_in.dtype, np.integer)
    for i, t in enumerate(targets):
        use = shadow_sets.target_shadow_mask(keep, t, seed=5)
        for group, s, c in ((keep, sum_in, count_in), (~keep, sum_out, count_out)):
            sel = use & group
            want = np.array([values[sel[:, n], n].sum(0) for n in range(80)])
            np.testing.assert_allclose(s[i], want, atol=1e-12)
            np.testing.assert_array_equal(c[i], sel.sum(0))
    # [M, N] values give the same sums as one query of [M, N, 1].
    flat = shadow_sets.shadow_group_sums(values[..., 0], keep, targets, 5)
    np.testing.assert_allclose(flat[0], sum_in[..., 0], atol=1e-12)

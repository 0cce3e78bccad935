"""The label-only query sets (ringD, rotR, '+') and rotations, against their definitions."""

import itertools

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage

from lira_jax.data.augment import Query, apply_query, query_names, query_set, rotate_image


@pytest.mark.parametrize("d", [0, 1, 2, 3])
def test_ring_is_identity_plus_every_shift_at_l1_distance_d(d):
    queries = query_set(f"ring{d}", mirror_ok=True)
    assert queries[0] == Query(False, 0, 0)
    rest = queries[1:]
    want = {
        (dy, dx)
        for dy, dx in itertools.product(range(-d, d + 1), repeat=2)
        if abs(dy) + abs(dx) == d
    }
    assert {(q.dy, q.dx) for q in rest} == (want if d else set())
    assert len(rest) == (4 * d if d else 0) == len(set(rest))
    assert not any(q.mirror or q.angle for q in queries)
    if d == 1:
        assert queries == query_set("cross1", mirror_ok=False)


@pytest.mark.parametrize("r", [0, 1, 4, 9])
def test_rot_is_every_integer_angle_in_range(r):
    queries = query_set(f"rot{r}", mirror_ok=True)
    assert len(queries) == 2 * r + 1 and queries[0] == Query(False, 0, 0)
    assert sorted(q.angle for q in queries) == list(range(-r, r + 1))
    assert not any(q.mirror or q.dy or q.dx for q in queries)


def test_combined_sets_have_identity_once_and_first():
    queries = query_set("ring2+rot4", mirror_ok=False)
    assert queries[0] == Query(False, 0, 0) and len(queries) == 1 + 8 + 8
    assert queries == query_set("ring2", False) + query_set("rot4", False)[1:]
    assert len(set(queries)) == len(queries)
    # Overlapping parts are merged, order kept: cross1 ⊂ shift1.
    assert query_set("cross1+shift1", False)[:5] == query_set("cross1", False)
    assert len(query_set("cross1+shift1", False)) == 9
    with pytest.raises(ValueError, match="Unknown query set 'spin3'"):
        query_set("ring1+spin3", False)


def test_names_of_unrotated_queries_are_unchanged_and_rotations_named():
    # Stores written before rotations existed hold these names.
    assert query_names(query_set("cross1", False)) == (
        "id_dy+0_dx+0",
        "id_dy-1_dx+0",
        "id_dy+0_dx-1",
        "id_dy+0_dx+1",
        "id_dy+1_dx+0",
    )
    assert Query(False, 0, 0, -3.0).name == "id_dy+0_dx+0_rot-3"
    assert Query(True, 1, 0, 2.5).name == "mirror_dy+1_dx+0_rot+2.5"


@pytest.mark.parametrize("angle", [1.0, -4.0, 9.0, 33.5])
def test_rotation_matches_scipy_bilinear_nearest_edges(angle):
    x = np.random.default_rng(0).normal(size=(3, 7, 9, 2)).astype(np.float32)
    got = np.asarray(rotate_image(jnp.asarray(x), angle))
    want = scipy.ndimage.rotate(x, angle, axes=(1, 2), reshape=False, order=1, mode="nearest")
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(
        np.asarray(apply_query(jnp.asarray(x), Query(False, 0, 0, angle))), got
    )


def test_rotation_direction_and_exact_quarter_turn():
    x = np.random.default_rng(1).normal(size=(2, 5, 5, 1)).astype(np.float32)
    # +90 degrees is counter-clockwise as displayed: numpy's rot90 on (rows, columns).
    np.testing.assert_allclose(
        rotate_image(jnp.asarray(x), 90.0), np.rot90(x, 1, axes=(1, 2)), atol=1e-5
    )
    np.testing.assert_array_equal(rotate_image(jnp.asarray(x), 0.0), x)

"""Tests for the DP-audit canaries (lira_jax.data.audit_canaries) and their place in a run:
what each kind plants, seeding, errors, and the store's `audit_canary` array under verify."""

import math

import numpy as np
import pytest
import tensorstore as ts

from experiments import train_shadows
from experiments.verify import verify_run
from lira_jax import store as store_lib
from lira_jax.data import audit_canaries, load_dataset
from lira_jax.train import run


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def cancer():
    return load_dataset("breast_cancer")


def _unchanged_outside(ds, planted, mask):
    np.testing.assert_array_equal(planted.x_train[~mask], ds.x_train[~mask])
    np.testing.assert_array_equal(planted.y_train[~mask], ds.y_train[~mask])
    np.testing.assert_array_equal(planted.x_test, ds.x_test)


def test_mislabeled_canaries_keep_the_input_and_take_another_label(digits):
    planted, mask = audit_canaries.plant(digits, 3, 200, "mislabeled")
    assert mask.sum() == 200 and mask.shape == digits.y_train.shape
    _unchanged_outside(digits, planted, mask)
    np.testing.assert_array_equal(planted.x_train[mask], digits.x_train[mask])
    assert np.all(planted.y_train[mask] != digits.y_train[mask])
    # The new label is uniform over the 9 others: every offset appears.
    offsets = (planted.y_train[mask] - digits.y_train[mask]) % 10
    assert set(offsets.tolist()) == set(range(1, 10))


def test_ood_canaries_are_distinct_uniform_noise_within_the_pool_range(digits):
    planted, mask = audit_canaries.plant(digits, 3, 100, "ood")
    _unchanged_outside(digits, planted, mask)
    x = planted.x_train[mask]
    lo, hi = float(digits.x_train.min()), float(digits.x_train.max())  # one channel
    assert x.min() >= lo and x.max() <= hi
    assert len({row.tobytes() for row in x}) == 100
    # Uniform on [lo, hi]: mean and spread of 6400 draws.
    assert x.mean() == pytest.approx((lo + hi) / 2, abs=0.05 * (hi - lo))
    assert x.std() == pytest.approx((hi - lo) / math.sqrt(12), rel=0.05)
    assert set(planted.y_train[mask].tolist()) == set(range(10))


@pytest.mark.parametrize("k", [40, 100])
def test_blank_canaries_are_blank_but_for_distinct_marks_and_carry_the_rarest_label(cancer, k):
    # breast_cancer: 30 features, so 100 canaries need marks of 2 positions.
    planted, mask = audit_canaries.plant(cancer, 0, k, "blank")
    _unchanged_outside(cancer, planted, mask)
    lo, hi = cancer.x_train.min(0), cancer.x_train.max(0)
    x = planted.x_train[mask]
    marked = x != lo[None]
    s = 1 if k <= 30 else 2
    assert np.all(marked.sum(1) == s)
    np.testing.assert_array_equal(x[marked], np.broadcast_to(hi, x.shape)[marked])
    assert len({tuple(np.flatnonzero(r)) for r in marked}) == k  # no two alike
    rare = np.argmin(np.bincount(cancer.y_train, minlength=2))
    assert np.all(planted.y_train[mask] == rare)


def test_canaries_are_a_pure_function_of_the_seed(digits):
    a, mask_a = audit_canaries.plant(digits, 7, 50, "ood")
    b, mask_b = audit_canaries.plant(digits, 7, 50, "ood")
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(mask_a, mask_b)
    _, mask_c = audit_canaries.plant(digits, 8, 50, "ood")
    assert (mask_a & mask_c).sum() < 25
    # The mislabeled and ood kinds of one seed pick the same examples.
    np.testing.assert_array_equal(audit_canaries.plant(digits, 7, 50, "mislabeled")[1], mask_a)


def test_bad_canary_settings_are_named(digits):
    with pytest.raises(ValueError, match="audit_canary_kind='noise'"):
        audit_canaries.plant(digits, 0, 5, "noise")
    with pytest.raises(ValueError, match=r"audit_canaries=5000 must be in \[1, 1500\]"):
        audit_canaries.plant(digits, 0, 5000, "ood")
    config = train_shadows.make_config("digits", audit_canaries=-1)
    with pytest.raises(ValueError, match="audit_canaries=-1"):
        run.check_config(config)
    config = train_shadows.make_config("digits", audit_canaries=5, audit_canary_kind="noise")
    with pytest.raises(ValueError, match="audit_canary_kind='noise'"):
        run.check_config(config)


def test_config_without_audit_canaries_is_unchanged():
    plain = train_shadows.make_config("digits")
    assert "audit_canaries" not in plain and "audit_canary_kind" not in plain
    assert train_shadows.make_config("digits", audit_canaries=0, audit_canary_kind="ood") == plain
    # The default kind is implied (absent), so both spellings are one store.
    default = train_shadows.make_config("digits", audit_canaries=8)
    explicit = train_shadows.make_config("digits", audit_canaries=8, audit_canary_kind="mislabeled")
    assert default == explicit and default["audit_canaries"] == 8


def test_a_run_records_its_canaries_and_verify_checks_them(tmp_path, cancer):
    config = train_shadows.make_config(
        "breast_cancer",
        num_models=2,
        epochs=1,
        audit_canaries=20,
        audit_canary_kind="blank",
    )
    store = run.train_shadows(config, tmp_path, log=lambda s: None)
    planted, mask = audit_canaries.plant(cancer, config["seed"], 20, "blank")
    np.testing.assert_array_equal(store.read_array("audit_canary"), mask)
    np.testing.assert_array_equal(store.labels(), planted.y_train)
    assert verify_run(tmp_path) == []
    # Flip one entry on disk: verify names the array.
    spec = store_lib._array_spec(store.path, "audit_canary")
    handle = ts.open(spec, read=True, write=True).result()
    handle[0].write(not bool(mask[0])).result()
    problems = verify_run(tmp_path)
    assert len(problems) == 1 and "corrupt array audit_canary" in problems[0]

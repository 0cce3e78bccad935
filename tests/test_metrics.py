"""Tests for lira_jax.metrics against scikit-learn and hand-computed examples."""

import numpy as np
import pytest
import sklearn.metrics

from lira_jax import metrics


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_matches_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = 500
    truth = rng.random(n) < 0.4
    scores = np.round(rng.normal(size=n) + truth, 1)  # rounding creates many ties
    fpr, tpr = metrics.roc_curve(scores, truth)
    ref_fpr, ref_tpr, _ = sklearn.metrics.roc_curve(truth, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, ref_fpr)
    np.testing.assert_allclose(tpr, ref_tpr)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
    assert metrics.auc(fpr, tpr) == pytest.approx(sklearn.metrics.roc_auc_score(truth, scores))
    ref_bal = max(
        sklearn.metrics.balanced_accuracy_score(truth, scores >= s) for s in np.unique(scores)
    )
    assert metrics.balanced_accuracy(fpr, tpr) == pytest.approx(ref_bal)


def test_perfect_separator():
    truth = np.array([True] * 10 + [False] * 20)
    scores = np.where(truth, 5.0, 0.0) + np.arange(30) * 1e-3
    s = metrics.summarize(scores, truth)
    assert s["auc"] == 1.0 and s["balanced_accuracy"] == 1.0
    assert all(v == 1.0 for v in s["tpr_at_fpr"].values())


def test_known_small_example():
    scores = np.array([4.0, 3.0, 2.0, 1.0])
    truth = np.array([True, False, True, False])
    fpr, tpr = metrics.roc_curve(scores, truth)
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])
    assert metrics.tpr_at_fpr(fpr, tpr, 0.5) == 0.5  # strictly below 0.5
    assert metrics.tpr_at_fpr(fpr, tpr, 0.51) == 1.0
    assert metrics.tpr_at_fpr(fpr, tpr, 0.0) == 0.0
    assert metrics.auc(fpr, tpr) == 0.75
    assert metrics.balanced_accuracy(fpr, tpr) == 0.75


def test_ties_are_one_threshold():
    fpr, tpr = metrics.roc_curve(np.array([1.0, 1.0, 0.0]), np.array([True, False, False]))
    np.testing.assert_allclose(fpr, [0, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 1, 1])


def test_summarize_fields_and_reach():
    rng = np.random.default_rng(3)
    truth = np.r_[np.ones(50, bool), np.zeros(2000, bool)]
    scores = rng.normal(size=truth.size) + 2 * truth
    s = metrics.summarize(scores, truth)
    assert set(s["tpr_at_fpr"]) == {"0.01", "0.001", "0.0001", "1e-05"}
    assert s["num_positives"] == 50 and s["num_negatives"] == 2000
    assert s["min_meaningful_fpr"] == 1 / 2000
    assert s["fpr_out_of_reach"] == ["0.0001", "1e-05"]
    assert 0.5 < s["auc"] <= 1.0
    tprs = list(s["tpr_at_fpr"].values())
    assert tprs == sorted(tprs, reverse=True)


def test_summarize_errors():
    with pytest.raises(ValueError, match="0 positives"):
        metrics.summarize(np.zeros(3), np.zeros(3, bool))
    with pytest.raises(ValueError, match="0 negatives"):
        metrics.summarize(np.zeros(3), np.ones(3, bool))
    with pytest.raises(ValueError, match="NaN"):
        metrics.summarize(np.array([0.0, np.nan]), np.array([True, False]))


def _resampled(scores, truth, units, seed):
    """The first bootstrap resample of `bootstrap_intervals`, expanded explicitly."""
    _, unit = np.unique(units, return_inverse=True)
    num_units = unit.max() + 1
    draws = np.random.default_rng(seed).integers(0, num_units, size=(1, num_units))[0]
    idx = np.concatenate([np.flatnonzero(unit == d) for d in draws])
    return scores[idx], truth[idx]


@pytest.mark.parametrize("seed", [0, 1])
def test_bootstrap_resample_equals_metrics_of_the_expanded_sample(seed):
    rng = np.random.default_rng(seed)
    n = 2000
    truth = rng.random(n) < 0.3
    scores = np.round(rng.normal(size=n) + truth, 1)  # ties
    units = rng.integers(0, 400, n)
    decisions = scores > 0.5
    levels = (0.01, 0.05, 0.2)
    ci = metrics.bootstrap_intervals(
        scores,
        truth,
        num_bootstrap=1,
        seed=seed,
        units=units,
        fpr_levels=levels,
        decisions=decisions,
    )
    s, t = _resampled(scores, truth, units, seed)
    ref = metrics.summarize(s, t, fpr_levels=levels)
    # With one resample the interval is [value, value].
    assert ci["auc"][0] == pytest.approx(ref["auc"], abs=1e-12)
    assert ci["balanced_accuracy"][0] == pytest.approx(ref["balanced_accuracy"], abs=1e-12)
    for lv, value in ref["tpr_at_fpr"].items():
        assert ci["tpr_at_fpr"][lv] == [value, value]
    op = metrics.operating_point(s > 0.5, t)
    for key, value in op.items():
        assert ci["operating_point"][key][0] == pytest.approx(value, abs=1e-12)


def test_bootstrap_contains_estimate_shrinks_and_is_seeded():
    rng = np.random.default_rng(4)
    widths = []
    for n in (400, 6400):
        truth = rng.random(n) < 0.5
        scores = rng.normal(size=n) + truth
        s = metrics.summarize(scores, truth, num_bootstrap=200, seed=3)
        lo, hi = s["ci"]["auc"]
        assert lo <= s["auc"] <= hi
        assert s["ci"]["balanced_accuracy"][0] <= s["balanced_accuracy"]
        assert s["balanced_accuracy"] <= s["ci"]["balanced_accuracy"][1]
        assert s["ci"]["num_bootstrap"] == s["ci"]["num_valid"] == 200
        widths.append(hi - lo)
    # Width ~ 1/sqrt(n): 16x the data, about a quarter of the width.
    assert 0.15 < widths[1] / widths[0] < 0.4
    again = metrics.summarize(scores, truth, num_bootstrap=200, seed=3)["ci"]
    assert again == s["ci"]
    other = metrics.summarize(scores, truth, num_bootstrap=200, seed=4)["ci"]
    assert other["auc"] != s["ci"]["auc"]
    # Chunking the resamples does not change them.
    chunked = metrics.bootstrap_intervals(
        scores, truth, num_bootstrap=200, seed=3, chunk_elements=1
    )
    assert chunked == s["ci"]


def test_bootstrap_units_resample_clusters():
    # Two copies of every example: resampling examples keeps the copies together, so the
    # interval is as wide as for the single copies, while treating copies as independent
    # would make it narrower by about sqrt(2).
    rng = np.random.default_rng(0)
    n = 1000
    truth = rng.random(n) < 0.5
    scores = rng.normal(size=n) + truth
    single = metrics.bootstrap_intervals(scores, truth, num_bootstrap=300, seed=1)["auc"]
    doubled = (np.r_[scores, scores], np.r_[truth, truth])
    clustered = metrics.bootstrap_intervals(
        *doubled, num_bootstrap=300, seed=1, units=np.r_[np.arange(n), np.arange(n)]
    )["auc"]
    naive = metrics.bootstrap_intervals(*doubled, num_bootstrap=300, seed=1)["auc"]
    width = lambda ci: ci[1] - ci[0]
    assert width(clustered) == pytest.approx(width(single), rel=0.25)
    assert width(naive) < 0.85 * width(clustered)


def test_operating_point_and_bootstrap_errors():
    truth = np.array([True, True, False, False, False])
    op = metrics.operating_point(np.array([True, False, True, False, False]), truth)
    assert op["tpr"] == 0.5 and op["fpr"] == pytest.approx(1 / 3)
    assert op["balanced_accuracy"] == pytest.approx(0.5 * (0.5 + 2 / 3))
    with pytest.raises(ValueError, match="num_bootstrap"):
        metrics.bootstrap_intervals(np.zeros(5), truth, num_bootstrap=0)
    with pytest.raises(ValueError, match="level"):
        metrics.bootstrap_intervals(np.zeros(5), truth, num_bootstrap=5, level=95)
    with pytest.raises(ValueError, match="units must have shape"):
        metrics.bootstrap_intervals(np.zeros(5), truth, num_bootstrap=5, units=np.arange(4))
    # Tiny samples: resamples with one class only are skipped and counted.
    ci = metrics.bootstrap_intervals(np.arange(5.0), truth, num_bootstrap=50, seed=0)
    assert ci["num_valid"] < 50 and ci["auc"] is not None


def test_bootstrap_with_many_scores_per_class_does_not_overflow():
    # 60,000 members x 60,000 non-members: P*N exceeds int32 (a bug seen on digits runs).
    rng = np.random.default_rng(0)
    truth = np.repeat([True, False], 60_000)
    scores = rng.normal(size=truth.size) + 0.3 * truth
    point = metrics.summarize(scores, truth)
    ci = metrics.bootstrap_intervals(scores, truth, num_bootstrap=8, seed=0)
    lo, hi = ci["auc"]
    assert 0.5 < lo <= point["auc"] <= hi < 1
    assert 0.5 < ci["balanced_accuracy"][0] <= point["balanced_accuracy"]

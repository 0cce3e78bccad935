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

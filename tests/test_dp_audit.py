"""Tests for lira_jax.dp_audit: the bounds are jax-privacy's on the same scores, stay below ε
on randomised response (a mechanism with a known ε) and approach it with more trials, sit
at zero without membership signal, and a bound above the accountant's ε is a violation."""

import math

import numpy as np
import pytest
from jax_privacy import auditing

from lira_jax import dp_audit


def _rr(eps, t, n, seed):
    """Randomised response on membership: each (model, example) "output" is the model's
    keep bit, kept with probability e^ε / (1 + e^ε): exactly ε-DP for that bit, and the best
    test (output 1 = IN) has TPR / FPR = e^ε, so ε is the tight answer."""
    rng = np.random.default_rng(seed)
    keep = rng.random((t, n)) < 0.5
    p = 1.0 / (1.0 + math.exp(-eps))
    scores = np.where(rng.random((t, n)) < p, keep, ~keep).astype(np.float64)
    return scores, keep


def test_figures_equal_jax_privacy_calls_on_the_same_scores():
    rng = np.random.default_rng(0)
    t, n = 6, 300
    keep = rng.random((t, n)) < 0.5
    scores = rng.normal(size=(t, n)) + 2.0 * keep
    canary = np.zeros(n, bool)
    canary[rng.choice(n, 120, replace=False)] = True
    entry, (got_in, got_out) = dp_audit.audit_scores(
        scores, keep, canary, delta=1e-5, accountant_epsilon=8.0
    )
    # Independently: loop over the (target, canary) pairs.
    ins = [scores[i, j] for i in range(t) for j in range(n) if canary[j] and keep[i, j]]
    outs = [scores[i, j] for i in range(t) for j in range(n) if canary[j] and not keep[i, j]]
    np.testing.assert_array_equal(got_in, ins)
    np.testing.assert_array_equal(got_out, outs)
    auditor = auditing.CanaryScoreAuditor(np.array(ins), np.array(outs))
    assert entry["epsilon_lower_multi_model"] == auditor.epsilon_clopper_pearson(0.05, 1e-5)
    assert entry["auc"] == pytest.approx(auditor.attack_auroc())
    assert entry["tpr_at_fpr"]["0.01"] == pytest.approx(auditor.tpr_at_given_fpr(0.01))
    assert entry["num_in"] + entry["num_out"] == t * 120 and entry["num_canaries"] == 120
    # One run: target 2 alone, at the significance and (for the max) at significance / T.
    s, k = scores[2, canary], keep[2, canary]
    one = auditing.CanaryScoreAuditor(s[k], s[~k])
    assert entry["one_run_per_target"][2] == pytest.approx(one.epsilon_one_run(0.05, 1e-5))
    assert entry["one_run_fdp_per_target"][2] == pytest.approx(one.epsilon_one_run_fdp(0.05, 1e-5))
    assert entry["epsilon_lower_one_run_mean"] == pytest.approx(
        np.mean(entry["one_run_per_target"])
    )
    strict = [
        auditing.CanaryScoreAuditor(
            scores[i, canary][keep[i, canary]], scores[i, canary][~keep[i, canary]]
        ).epsilon_one_run(0.05 / t, 1e-5)
        for i in range(t)
    ]
    assert entry["epsilon_lower_one_run_max"] == pytest.approx(max(strict))
    assert entry["epsilon_lower_multi_model"] > 1.0  # a real signal gives a real bound
    assert not entry["violation"] and entry["accountant_epsilon"] == 8.0


@pytest.mark.parametrize("eps", [1.0, 2.0, 4.0])
def test_randomized_response_bound_stays_below_epsilon_and_approaches_it(eps):
    bounds = []
    for n in (32, 256, 2048):
        scores, keep = _rr(eps, 16, n, seed=int(eps * 10) + n)
        entry = dp_audit.multi_model_bounds(
            *dp_audit.pooled_scores(scores, keep, np.ones(n, bool)), delta=1e-5
        )
        bounds.append(entry["epsilon_lower_multi_model"])
    assert all(b <= eps for b in bounds)
    assert bounds[0] < bounds[1] < bounds[2]
    assert bounds[2] > 0.9 * eps  # 32,768 trials: within 10 % of the truth
    # The one-run bound (one model, its own canaries) holds too, and grows with them.
    scores, keep = _rr(eps, 4, 2000, seed=3)
    few = dp_audit.one_run_bounds(scores[:, :200], keep[:, :200], np.ones(200, bool), delta=1e-5)
    many = dp_audit.one_run_bounds(scores, keep, np.ones(2000, bool), delta=1e-5)
    for r in (few, many):
        assert r["epsilon_lower_one_run_max"] <= eps
        assert max(r["one_run_per_target"]) <= eps
    assert many["epsilon_lower_one_run_mean"] > few["epsilon_lower_one_run_mean"]


def test_one_run_fdp_bound_assumes_a_gaussian_mechanism():
    """Why the f-DP figure is reported but never called a violation: it tests a Gaussian
    trade-off curve, and randomised response (pure ε-DP) breaks that claim at its own ε."""
    eps = 4.0
    scores, keep = _rr(eps, 8, 500, seed=1)
    r = dp_audit.one_run_bounds(scores, keep, np.ones(500, bool), delta=1e-5)
    assert r["epsilon_lower_one_run_fdp_mean"] > eps
    assert r["epsilon_lower_one_run_max"] <= eps
    assert "epsilon_lower_one_run_fdp_max" not in dp_audit.BOUND_KEYS


def test_no_membership_signal_gives_no_bound_and_auc_one_half():
    rng = np.random.default_rng(4)
    t, n = 16, 1000
    keep = rng.random((t, n)) < 0.5
    scores = rng.normal(size=(t, n))  # independent of membership
    entry, _ = dp_audit.audit_scores(
        scores, keep, np.ones(n, bool), delta=1e-5, accountant_epsilon=0.1, num_bootstrap=200
    )
    n_in, n_out = entry["num_in"], entry["num_out"]
    se = math.sqrt((n_in + n_out + 1) / (12 * n_in * n_out))  # the AUC's null spread
    assert abs(entry["auc"] - 0.5) < 3 * se
    lo, hi = entry["auc_ci"]
    assert lo < entry["auc"] < hi and hi - lo < 6 * se
    assert entry["epsilon_lower_multi_model"] <= 0.1
    assert entry["epsilon_lower_one_run_max"] <= 0.1
    assert not entry["violation"]


def test_a_bound_above_the_accountant_is_a_violation():
    scores, keep = _rr(3.0, 16, 512, seed=2)
    entry, _ = dp_audit.audit_scores(
        scores, keep, np.ones(512, bool), delta=1e-5, accountant_epsilon=1.0, one_run=False
    )
    assert entry["violation"] and "epsilon_lower_multi_model" in entry["violations"]
    assert dp_audit.violations(entry, None) == [] and dp_audit.violations(entry, math.inf) == []
    nonprivate, _ = dp_audit.audit_scores(
        scores, keep, np.ones(512, bool), delta=1e-5, one_run=False
    )
    assert nonprivate["epsilon_lower_one_run_max"] is None
    assert nonprivate["accountant_epsilon"] is None and not nonprivate["violation"]


def test_bad_inputs_are_named():
    scores, keep = _rr(1.0, 4, 20, seed=0)
    with pytest.raises(ValueError, match="must be"):
        dp_audit.pooled_scores(scores, keep[:2], np.ones(20, bool))
    with pytest.raises(ValueError, match="selects no example"):
        dp_audit.pooled_scores(scores, keep, np.zeros(20, bool))
    bad = scores.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        dp_audit.pooled_scores(bad, keep, np.ones(20, bool))
    with pytest.raises(ValueError, match="significance=0.7"):
        dp_audit.multi_model_bounds(scores[0], scores[1], delta=1e-5, significance=0.7)
    with pytest.raises(ValueError, match="delta=0"):
        dp_audit.multi_model_bounds(scores[0], scores[1], delta=0)
    with pytest.raises(ValueError, match="0 IN"):
        dp_audit.multi_model_bounds(np.zeros(0), scores[1], delta=1e-5)

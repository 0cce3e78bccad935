"""Tests for lira_jax.attacks.blia: planted signals are recovered at their known rates, OUT
pairs sit at 50 %, and the label-DP audit's bound holds for randomized response and flags a
broken mechanism."""

import math
import warnings

import numpy as np
import pytest
from scipy import stats

from lira_jax.attacks import blia
from lira_jax.data import keep_mask, model_labels
from lira_jax.metrics import clopper_pearson

M, N, K = 40, 600, 300


def _world(seed=0, epsilon=None):
    rng = np.random.default_rng(seed)
    true = rng.integers(0, 2, N)
    keep = keep_mask(seed, M, N)
    lab = model_labels(seed, true, 2, np.arange(M), num_canaries=K, label_dp_epsilon=epsilon)
    return keep, lab


def _logits_from_margin(margin):
    """[M, N, 1, 2] logits whose label margin (log p1 - log p0) is `margin`."""
    z0 = np.random.default_rng(7).normal(size=margin.shape)  # arbitrary common offset
    return np.stack([z0, z0 + margin], -1)[:, :, None, :].astype(np.float64)


def _planted(a, keep, labels, bias=0.0, seed=1):
    """Δ = bias + a·(2y − 1) + Z on IN examples, bias + Z on OUT ones (Z ~ N(0, 1))."""
    z = np.random.default_rng(seed).normal(size=labels.shape)
    return bias + np.where(keep, a * (2 * labels - 1), 0.0) + z


def test_clopper_pearson_matches_its_definition():
    lo, hi = clopper_pearson(37, 120, 0.9)
    # The ends are where the binomial tails equal (1 - level) / 2.
    assert stats.binom.sf(36, 120, lo) == pytest.approx(0.05, abs=1e-9)
    assert stats.binom.cdf(37, 120, hi) == pytest.approx(0.05, abs=1e-9)
    assert clopper_pearson(0, 10)[0] == 0.0 and clopper_pearson(10, 10)[1] == 1.0
    with pytest.raises(ValueError, match="11 of 10"):
        clopper_pearson(11, 10)


def test_label_margin_is_the_log_loss_difference():
    logits = np.random.default_rng(0).normal(size=(3, 4, 2, 2)).astype(np.float32)
    d = blia.label_margin(logits, query=1)
    p = np.exp(logits[:, :, 1]) / np.exp(logits[:, :, 1]).sum(-1, keepdims=True)
    np.testing.assert_allclose(d, -np.log(p[..., 0]) + np.log(p[..., 1]), rtol=1e-5)
    with pytest.raises(ValueError, match="binary classifier"):
        blia.label_margin(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="query=2"):
        blia.label_margin(logits, query=2)


def test_hand_counted_example():
    # 2 models, 4 examples; canaries 0, 1, 2.
    margin = np.array([[2.0, -1.0, 0.5, 9.0], [-3.0, 0.2, -0.1, 9.0]])
    private = np.array([[1, 1, 1, 0], [0, 0, 1, 1]])
    keep = np.array([[True, True, False, True], [True, False, True, False]])
    canary = np.array([True, True, True, False])
    out = blia.confidence_attack(_logits_from_margin(margin), private, keep, canary)
    # IN pairs: (0,0) pred 1 ok, (0,1) pred 0 wrong, (1,0) pred 0 ok, (1,2) pred 0 wrong.
    assert (out["in"].successes, out["in"].trials) == (2, 4)
    # OUT pairs: (0,2) pred 1 ok, (1,1) pred 1 wrong.
    assert (out["out"].successes, out["out"].trials) == (1, 2)
    m = blia.margin_attack(_logits_from_margin(margin), private, keep, canary, margin=1.0)
    # Decided IN pairs: (0,0) |2|, (0,1) |-1|, (1,0) |-3| -> 2 of 3 right; coverage 3/4.
    assert (m["in"].successes, m["in"].trials, m["coverage"]) == (2, 3, 0.75)


def test_confidence_rule_recovers_a_planted_signal_and_out_pairs_sit_at_one_half():
    keep, lab = _world()
    a = 1.0
    logits = _logits_from_margin(_planted(a, keep, lab.private_labels))
    out = blia.confidence_attack(logits, lab.private_labels, keep, lab.canary)
    want = stats.norm.cdf(a)  # P(a + Z > 0)
    assert out["in"].trials == keep[:, lab.canary].sum() == M * K // 2
    lo, hi = out["in"].interval
    assert lo < want < hi and out["in"].rate > 0.8
    lo, hi = out["out"].interval
    assert lo < 0.5 < hi and out["out"].trials == M * K // 2


def test_margin_rule_coverage_and_accuracy_match_their_known_values():
    keep, lab = _world(seed=3)
    a, delta = 0.5, 1.0
    logits = _logits_from_margin(_planted(a, keep, lab.private_labels, seed=4))
    m = blia.margin_attack(logits, lab.private_labels, keep, lab.canary, margin=delta)
    right, wrong = stats.norm.sf(delta - a), stats.norm.cdf(-delta - a)
    assert m["coverage"] == pytest.approx(right + wrong, abs=0.02)
    lo, hi = m["in"].interval
    assert lo < right / (right + wrong) < hi
    assert m["out"].interval[0] < 0.5 < m["out"].interval[1]
    # The default margin is the label-free median |Δ| over IN canary pairs: coverage 1/2.
    default = blia.margin_attack(logits, lab.private_labels, keep, lab.canary)
    assert default["coverage"] == pytest.approx(0.5, abs=1e-3)
    curve = blia.margin_curve(logits, lab.private_labels, keep, lab.canary)
    assert curve["margin"] == sorted(curve["margin"])
    assert np.all(np.diff(curve["coverage"]) <= 0)  # larger margin, fewer decisions
    # Success on the decided pairs grows with the margin (it is a confidence filter).
    assert curve["success"][-1] > curve["success"][0] + 0.1


def test_calibrated_threshold_undoes_a_bias_and_equals_brute_force():
    keep, lab = _world(seed=5)
    a, bias = 1.0, 2.0
    margin = _planted(a, keep, lab.private_labels, bias=bias, seed=6)
    # Non-canary training examples carry the same biased signal (their labels are known).
    logits = _logits_from_margin(margin)
    fixed = blia.confidence_attack(logits, lab.private_labels, keep, lab.canary)
    cal = blia.confidence_attack(
        logits, lab.private_labels, keep, lab.canary, threshold="calibrated"
    )
    assert cal["in"].rate > fixed["in"].rate + 0.1
    assert cal["in"].interval[0] < stats.norm.cdf(a) < cal["in"].interval[1]
    t = np.log(np.array(cal["threshold"]) / (1 - np.array(cal["threshold"])))
    assert abs(np.median(t) - bias) < 0.2 and np.all(np.abs(t - bias) < 1.0)
    # Against brute force: the best accuracy over every threshold, one model.
    mask = keep & ~lab.canary[None]
    t_all = blia.calibrate_thresholds(margin, lab.private_labels, mask)
    d, y = margin[0][mask[0]], lab.private_labels[0][mask[0]]
    grid = np.concatenate([[-np.inf], np.sort(d), [np.inf]])
    best = max(((d >= g) == y).sum() for g in grid)
    assert ((d >= t_all[0]) == y).sum() == best


def test_audit_bound_holds_for_a_perfectly_memorising_model_under_randomized_response():
    # The strongest passive attacker: the model outputs exactly the label it trained on.
    # Under ε-label-DP its success is e^ε/(1+e^ε), the bound itself: never above it.
    for eps in (0.5, 2.0):
        keep, lab = _world(seed=8, epsilon=eps)
        margin = np.where(keep, 6.0 * (2 * lab.train_labels - 1), 0.0)
        logits = _logits_from_margin(margin)
        with warnings.catch_warnings():
            warnings.simplefilter("error", blia.LabelDPViolationWarning)
            res = blia.evaluate(logits, lab.private_labels, keep, lab.canary, label_dp_epsilon=eps)
        bound = np.exp(eps) / (1 + np.exp(eps))
        assert res["bound"] == pytest.approx(bound)
        lo, hi = res["confidence"]["interval"]
        assert lo < bound < hi  # the attack attains the bound
        aud = res["audit"]["confidence"]
        assert not res["violation"] and aud["epsilon_hat"] <= eps
        assert aud["epsilon_hat"] == pytest.approx(math.log(lo / (1 - lo)))
        c = res["confidence"]["control_interval"]
        assert c[0] < 0.5 < c[1]


def test_audit_flags_a_broken_mechanism_loudly():
    # Models that saw the private labels themselves, reported as ε = 0.5 label-DP.
    keep, lab = _world(seed=9)
    logits = _logits_from_margin(np.where(keep, 6.0 * (2 * lab.private_labels - 1), 0.0))
    with pytest.warns(blia.LabelDPViolationWarning, match="LABEL-DP VIOLATION"):
        res = blia.evaluate(logits, lab.private_labels, keep, lab.canary, label_dp_epsilon=0.5)
    assert res["violation"] and res["audit"]["confidence"]["violation"]
    assert res["confidence"]["success"] == 1.0


def test_bounds_and_empirical_epsilon():
    assert blia.success_bound() == 1.0 and blia.success_bound(float("inf")) == 1.0
    assert blia.success_bound(1.0) == pytest.approx(math.e / (1 + math.e))
    assert blia.success_bound(dp_epsilon=1.0, dp_delta=1e-3) == pytest.approx(
        (math.e + 1e-3) / (1 + math.e)
    )
    # The tighter of label-DP and DP-SGD applies.
    assert blia.success_bound(0.5, dp_epsilon=3.0) == pytest.approx(blia.success_bound(0.5))
    for eps in (0.1, 1.0, 4.0):
        assert blia.empirical_epsilon(blia.success_bound(eps)) == pytest.approx(eps)
        s = blia.success_bound(dp_epsilon=eps, dp_delta=1e-2)
        assert blia.empirical_epsilon(s, 1e-2) == pytest.approx(eps)
    assert blia.empirical_epsilon(0.45) == 0.0
    rate = blia.Rate.of(np.arange(100) < 80)
    res = blia.audit(rate, label_dp_epsilon=None, dp_epsilon=2.0, dp_delta=1e-5)
    lo = rate.interval[0]
    assert res["epsilon_hat_dp"] == pytest.approx(math.log((lo - 1e-5) / (1 - lo)))
    assert res["dp_epsilon"] == 2.0 and not res["violation"]


def test_bad_inputs_are_named():
    keep, lab = _world()
    logits = _logits_from_margin(np.zeros((M, N)))
    with pytest.raises(ValueError, match="no canaries"):
        blia.confidence_attack(logits, lab.private_labels, keep, np.zeros(N, bool))
    with pytest.raises(ValueError, match="threshold=1.5"):
        blia.confidence_attack(logits, lab.private_labels, keep, lab.canary, threshold=1.5)
    with pytest.raises(ValueError, match="shapes disagree"):
        blia.confidence_attack(logits, lab.private_labels[:3], keep, lab.canary)
    with pytest.raises(ValueError, match="margin=-1"):
        blia.margin_attack(logits, lab.private_labels, keep, lab.canary, margin=-1)


def test_false_alarms_at_a_tight_bound_are_rare():
    # A perfect memoriser's success is Binomial(n, bound)/n: honest audits at the bound itself.
    eps, n = 1.0, 400
    bound = blia.success_bound(eps)
    draws = np.random.default_rng(11).binomial(n, bound, size=2000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", blia.LabelDPViolationWarning)
        flags = [
            blia.audit(blia.Rate.of(np.arange(n) < k), label_dp_epsilon=eps)["violation"]
            for k in draws
        ]
    # At most (1 - VIOLATION_LEVEL) / 2 = 0.05 % expected (Clopper-Pearson is conservative);
    # the 95 % lower end alone would pass the bound in about 2.5 % of them.
    assert sum(flags) <= 4
    lowers = [clopper_pearson(int(k), n)[0] for k in draws[:400]]
    assert 0.005 < np.mean(np.array(lowers) > bound) < 0.06


def test_auditor_cross_check_on_randomized_response_and_a_broken_mechanism():
    """jax-privacy's auditor on the BLIA scores: below ε under ε-label-DP (a perfect
    memoriser attains e^ε exactly, so its bound comes close), equal to the library's own
    call on the same pairs, and far above ε when the mechanism is broken."""
    from jax_privacy import auditing

    eps = 1.0
    keep, lab = _world(seed=8, epsilon=eps)
    margin = np.where(keep, 6.0 * (2 * lab.train_labels - 1), 0.0)
    logits = _logits_from_margin(margin)
    with warnings.catch_warnings():
        warnings.simplefilter("error", blia.LabelDPViolationWarning)
        res = blia.evaluate(logits, lab.private_labels, keep, lab.canary, label_dp_epsilon=eps)
    conf, marg = res["audit"]["confidence"], res["audit"]["log_loss_margin"]
    assert not res["violation"] and not conf["auditor_violation"]
    assert 0.5 * eps < conf["epsilon_hat_auditor"] <= eps
    assert conf["epsilon_hat_auditor_dp"] is None  # no DP-SGD
    # Independently: the IN canary pairs, label 1 against label 0, threshold 0 on Δ.
    pairs = keep & lab.canary[None]
    d, y = margin[pairs], lab.private_labels[pairs]
    want = auditing.CanaryScoreAuditor(d[y == 1], d[y == 0]).epsilon_clopper_pearson(
        0.05, 0.0, one_sided=False, threshold_strategy=auditing.Explicit(0.0)
    )
    assert conf["epsilon_hat_auditor"] == pytest.approx(want)
    # Both rules see the same evidence here (|Δ| = 6 everywhere: the margin rule decides
    # all), the margin rule at half the significance for each of its two events.
    assert marg["epsilon_hat_auditor"] <= conf["epsilon_hat_auditor"] + 1e-9
    assert marg["epsilon_hat_auditor"] > 0.5 * eps
    # The hand-written ε̂ (one success rate) and the auditor's (two rates) read the same
    # mechanism: both within ε, within 0.25 of each other.
    assert abs(conf["epsilon_hat"] - conf["epsilon_hat_auditor"]) < 0.25
    # Broken: trained on the private labels themselves, claimed ε = 0.5.
    keep, lab = _world(seed=9)
    logits = _logits_from_margin(np.where(keep, 6.0 * (2 * lab.private_labels - 1), 0.0))
    with pytest.warns(blia.LabelDPViolationWarning) as caught:
        res = blia.evaluate(logits, lab.private_labels, keep, lab.canary, label_dp_epsilon=0.5)
    messages = [str(w.message) for w in caught]
    assert sum("jax-privacy's auditor" in m for m in messages) == 2  # one per rule
    assert res["audit"]["confidence"]["auditor_violation"]
    assert res["audit"]["log_loss_margin"]["auditor_violation"]
    assert res["audit"]["confidence"]["epsilon_hat_auditor"] > 3.0
    assert blia.auditor_epsilon(np.zeros(3), np.ones(3), 0.0, abstains=False) is None

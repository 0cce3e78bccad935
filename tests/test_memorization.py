"""Tests for lira_jax.memorization: loops on small arrays and a synthetic store."""

import csv
import io

import numpy as np
import pytest
import scipy.special
import scipy.stats

from lira_jax import memorization as mz
from lira_jax.data.membership import keep_mask
from lira_jax.report import curves


def _logits_from_phi(phi):
    """Two-class logits [M, N, A, 2] with label 1 whose φ is exactly `phi` [M, N, A]."""
    logits = np.zeros(phi.shape + (2,))
    logits[..., 1] = phi
    return logits


def _synthetic_store(num_models=128, seed=0, pkeep=0.5):
    """Three groups with known IN/OUT φ distributions (σ = 1, two queries).

    group 0: φ_out ~ N(−2, 1), φ_in ~ N(2, 1)     → mem = Φ(2) − Φ(−2)
    group 1: φ_out ~ N(−0.5, 1), φ_in ~ N(0.5, 1)  → mem = Φ(0.5) − Φ(−0.5)
    group 2: φ_out ~ N(3, 1), φ_in ~ N(3.5, 1)     → mem = Φ(3.5) − Φ(3)
    (correct ⇔ φ > 0 for two classes, so mem = P[φ_in > 0] − P[φ_out > 0]).
    """
    rng = np.random.default_rng(seed)
    per_group = 60
    group = np.repeat(np.arange(3), per_group)
    mu_out = np.array([-2.0, -0.5, 3.0])[group]
    mu_in = np.array([2.0, 0.5, 3.5])[group]
    keep = keep_mask(seed, num_models, group.size, pkeep)
    mean = np.where(keep, mu_in, mu_out)
    phi = mean[:, :, None] + rng.normal(size=(num_models, group.size, 2))
    labels = np.ones(group.size, np.int64)
    norm = scipy.stats.norm
    true_mem = norm.cdf(mu_in) - norm.cdf(mu_out)
    true_soft = _expected_sigmoid(mu_in) - _expected_sigmoid(mu_out)
    return dict(
        phi=phi,
        logits=_logits_from_phi(phi),
        labels=labels,
        keep=keep,
        group=group,
        true_mem=true_mem,
        true_soft=true_soft,
        true_privacy=np.abs(mu_in - mu_out) / 2.0,
    )


def _expected_sigmoid(mu):
    """E[sigmoid(Z)], Z ~ N(mu, 1), by Gauss–Hermite quadrature."""
    x, w = np.polynomial.hermite_e.hermegauss(80)
    return (w[None, :] * scipy.special.expit(np.asarray(mu)[:, None] + x[None, :])).sum(1) / w.sum()


def test_memorization_matches_plain_loop_with_pkeep_07():
    rng = np.random.default_rng(1)
    keep = keep_mask(3, 20, 15, pkeep=0.7)
    correct = rng.random((20, 15)) < 0.6
    soft = rng.random((20, 15))
    got = mz.memorization(keep, correct)
    got_soft = mz.memorization(keep, soft)
    for n in range(15):
        ins = [correct[m, n] for m in range(20) if keep[m, n]]
        outs = [correct[m, n] for m in range(20) if not keep[m, n]]
        assert len(ins) == 14 and len(outs) == 6
        assert got[n] == pytest.approx(sum(ins) / len(ins) - sum(outs) / len(outs), abs=1e-12)
        s_in = [soft[m, n] for m in range(20) if keep[m, n]]
        s_out = [soft[m, n] for m in range(20) if not keep[m, n]]
        assert got_soft[n] == pytest.approx(np.mean(s_in) - np.mean(s_out), abs=1e-12)


def test_target_memorization_uses_each_targets_shadow_sets_only():
    from lira_jax.attacks import shadow_sets

    rng = np.random.default_rng(3)
    for keep in (keep_mask(1, 12, 80, 0.5), rng.random((12, 80)) < 0.6):
        keep[0], keep[1] = True, False  # unbalanced in the second case; IN and OUT models
        correct = rng.random(keep.shape) < 0.7
        targets = np.array([0, 5, 11])
        got = mz.target_memorization(keep, correct, targets, seed=4)
        for i, t in enumerate(targets):
            use = shadow_sets.target_shadow_mask(keep, t, seed=4)
            for n in range(80):
                ins = correct[use[:, n] & keep[:, n], n]
                outs = correct[use[:, n] & ~keep[:, n], n]
                assert got[i, n] == pytest.approx(ins.mean() - outs.mean(), abs=1e-12)
        # The target's own correctness never enters its estimate.
        flipped = correct.copy()
        flipped[5] = ~flipped[5]
        np.testing.assert_array_equal(mz.target_memorization(keep, flipped, [5], seed=4)[0], got[1])
    with pytest.raises(ValueError, match="targets must be model indices"):
        mz.target_memorization(keep, correct, [12])


def test_influence_matches_loop_and_its_diagonal_is_memorization():
    rng = np.random.default_rng(2)
    keep = rng.random((30, 8)) < 0.7
    keep[0], keep[1] = True, False
    test_correct = rng.random((30, 5)) < 0.5
    got = mz.influence(keep, test_correct)
    assert got.shape == (8, 5)
    for i in range(8):
        for j in range(5):
            expected = test_correct[keep[:, i], j].mean() - test_correct[~keep[:, i], j].mean()
            assert got[i, j] == pytest.approx(expected, abs=1e-12)
    train_correct = rng.random((30, 8)) < 0.5
    np.testing.assert_allclose(
        np.diag(mz.influence(keep, train_correct)), mz.memorization(keep, train_correct)
    )
    # Column blocks of keep give row blocks of the result.
    np.testing.assert_allclose(mz.influence(keep[:, 3:6], test_correct), got[3:6])


def test_privacy_score_matches_loop_identity_and_mean_queries():
    rng = np.random.default_rng(3)
    keep = keep_mask(4, 12, 7, pkeep=0.5)
    phi = rng.normal(size=(12, 7, 3)) * rng.uniform(0.5, 2, size=7)[:, None]
    got_id = mz.privacy_score(phi, keep)
    got_mean = mz.privacy_score(phi, keep, queries="mean")
    for n in range(7):
        for got, x in ((got_id, phi[:, n, 0]), (got_mean, phi[:, n].mean(1))):
            a, b = x[keep[:, n]], x[~keep[:, n]]
            expected = abs(a.mean() - b.mean()) / (a.std() + b.std())
            assert got[n] == pytest.approx(expected, rel=1e-12)
    # [M, N] φ is accepted as one query.
    np.testing.assert_allclose(mz.privacy_score(phi[:, :, 0], keep), got_id)


def test_privacy_score_with_zero_spread_is_inf_or_zero_not_nan():
    keep = np.array([[True, True], [False, False]])
    phi = np.array([[1.0, 2.0], [0.0, 2.0]])
    np.testing.assert_array_equal(mz.privacy_score(phi, keep), [np.inf, 0.0])


def test_synthetic_store_recovers_known_memorization_and_privacy():
    s = _synthetic_store()
    sig = mz.memorization_signals(s["logits"], s["labels"])
    mem = mz.memorization(s["keep"], sig.correct)
    soft = mz.memorization(s["keep"], sig.p_true)
    score = mz.privacy_score(sig.phi, s["keep"])
    for g in range(3):
        sel = s["group"] == g
        # 64 IN and 64 OUT models: per-example std <= 0.09, group mean of 60 far tighter.
        assert mem[sel].mean() == pytest.approx(s["true_mem"][sel][0], abs=0.03)
        assert soft[sel].mean() == pytest.approx(s["true_soft"][sel][0], abs=0.03)
        assert np.median(score[sel]) == pytest.approx(s["true_privacy"][sel][0], rel=0.15)
    assert mem[s["group"] == 0].min() > 0.8 and mem[s["group"] == 2].max() < 0.1


def test_pkeep_07_synthetic_store_recovers_memorization():
    s = _synthetic_store(num_models=100, pkeep=0.7, seed=5)
    sig = mz.memorization_signals(s["logits"], s["labels"])
    mem = mz.memorization(s["keep"], sig.correct)
    for g in range(3):
        sel = s["group"] == g
        assert mem[sel].mean() == pytest.approx(s["true_mem"][sel][0], abs=0.04)


def test_memorization_signals_match_softmax_and_argmax():
    rng = np.random.default_rng(6)
    logits = rng.normal(size=(4, 5, 2, 3)) * 3
    labels = rng.integers(0, 3, size=5)
    sig = mz.memorization_signals(logits, labels)
    p = np.exp(logits[:, :, 0]) / np.exp(logits[:, :, 0]).sum(-1, keepdims=True)
    np.testing.assert_allclose(sig.p_true, p[:, np.arange(5), labels], rtol=1e-12)
    np.testing.assert_array_equal(sig.correct, logits[:, :, 0].argmax(-1) == labels)
    assert sig.phi.shape == (4, 5, 2)
    sig1 = mz.memorization_signals(logits, labels, query=1)
    np.testing.assert_array_equal(sig1.correct, logits[:, :, 1].argmax(-1) == labels)


def test_errors_name_the_problem():
    keep = keep_mask(0, 10, 6, 0.5)
    correct = np.ones((10, 6), bool)
    bad = keep.copy()
    bad[:, [1, 4]] = True
    with pytest.raises(ValueError, match=r"2 of 6 examples \(e.g. indices \[1, 4\]\).*OUT"):
        mz.memorization(bad, correct)
    bad[:, 4] = False
    with pytest.raises(ValueError, match=r"1 of 6 examples.*IN"):
        mz.privacy_score(np.zeros((10, 6)), bad)
    with pytest.raises(ValueError, match=r"correct.*models=10"):
        mz.memorization(keep, correct[:9])
    with pytest.raises(ValueError, match=r"keep.shape"):
        mz.memorization(keep, correct[:, :5])
    nan_values = np.zeros((10, 6))
    nan_values[3, 2] = np.nan
    with pytest.raises(ValueError, match=r"NaN/inf.*model\(s\) \[3\]"):
        mz.memorization(keep, nan_values)
    with pytest.raises(ValueError, match=r"NaN/inf.*\[3\]"):
        mz.privacy_score(nan_values, keep)
    logits = np.zeros((10, 6, 1, 2))
    logits[7, 0, 0, 1] = np.inf
    with pytest.raises(ValueError, match=r"model\(s\) \[7\]"):
        mz.memorization_signals(logits, np.zeros(6, int))
    with pytest.raises(ValueError, match="queries"):
        mz.privacy_score(np.zeros((10, 6, 2)), keep, queries="median")


def test_buckets_and_singletons():
    mem = np.array([-0.2, 0.0, 0.1, 0.3, 0.5, 0.9, 0.45])
    np.testing.assert_array_equal(mz.bucketize(mem), [0, 0, 1, 1, 2, 2, 1])
    assert mz.bucket_names() == ["mem<0.1", "0.1<=mem<0.5", "mem>=0.5"]
    assert mz.bucket_names([0.25]) == ["mem<0.25", "mem>=0.25"]
    sel = mz.select_singletons(mem, 0.4)
    assert sel["num_selected"] == 3 and sel["num_examples"] == 7
    assert sel["indices"] == [5, 4, 6]
    assert sel["fraction"] == pytest.approx(3 / 7)
    with pytest.raises(ValueError, match="increasing"):
        mz.bucketize(mem, [0.5, 0.1])
    with pytest.raises(ValueError, match="NaN"):
        mz.bucketize(np.array([0.1, np.nan]))


def test_per_example_table_and_csv():
    s = _synthetic_store(num_models=16)
    sig = mz.memorization_signals(s["logits"], s["labels"])
    table = mz.per_example_table(s["keep"], s["labels"], sig, groups=s["group"])
    assert list(table) == [
        "index",
        "label",
        "memorization",
        "soft_memorization",
        "privacy_score",
        "bucket",
        "group",
        "num_in",
        "num_out",
    ]
    n = s["labels"].size
    assert all(col.shape == (n,) for col in table.values())
    np.testing.assert_array_equal(table["num_in"], 8)
    np.testing.assert_array_equal(table["num_out"], 8)
    np.testing.assert_allclose(table["memorization"], mz.memorization(s["keep"], sig.correct))
    np.testing.assert_array_equal(table["bucket"], mz.bucketize(table["memorization"]))
    rows = list(csv.DictReader(io.StringIO(mz.format_csv(table))))
    assert len(rows) == n
    assert rows[5]["index"] == "5" and rows[5]["group"] == "0"
    assert float(rows[5]["memorization"]) == pytest.approx(table["memorization"][5], rel=1e-8)
    assert "group" not in mz.per_example_table(s["keep"], s["labels"], sig)
    with pytest.raises(ValueError, match="equal length"):
        mz.format_csv({"a": np.zeros(2), "b": np.zeros(3)})


def test_memorization_plots_write_pngs(tmp_path):
    s = _synthetic_store(num_models=16)
    sig = mz.memorization_signals(s["logits"], s["labels"])
    mem = mz.memorization(s["keep"], sig.correct)
    score = mz.privacy_score(sig.phi, s["keep"])
    score[0] = np.inf
    hist = curves.plot_memorization_histogram(
        mem, tmp_path / "hist.png", soft_mem=mz.memorization(s["keep"], sig.p_true)
    )
    scatter = curves.plot_privacy_vs_memorization(
        mem,
        score,
        tmp_path / "scatter.png",
        groups=mz.bucketize(mem),
        group_names=mz.bucket_names(),
        spearman={"rho": 0.8, "pvalue": 1e-10},
    )
    for path in (hist, scatter):
        with open(path, "rb") as f:
            data = f.read()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000

"""Tests for LiRA and the leave-one-model-out evaluation on synthetic Gaussian φ."""

import numpy as np
import pytest
import scipy.stats

from lira_jax import attacks, metrics
from lira_jax.attacks import shadow_sets


def _synthetic(n=4000, s=64, a=1, d=1.0, sigma=1.0, spread=3.0, seed=0):
    """Per-example μ_out ~ N(0, spread²), μ_in = μ_out + d, common σ; balanced shadow keep."""
    rng = np.random.default_rng(seed)
    mu_out = rng.normal(scale=spread, size=n)
    keep = rng.uniform(size=(s, n)).argsort(0) < s // 2
    shadow_phi = mu_out[None, :, None] + d * keep[..., None] + sigma * rng.normal(size=(s, n, a))
    target_keep = rng.random(n) < 0.5
    target_phi = mu_out[:, None] + d * target_keep[:, None] + sigma * rng.normal(size=(n, a))
    return target_phi, shadow_phi, keep, target_keep


def test_online_and_offline_reach_analytic_auc_and_beat_global_threshold():
    d, sigma, spread = 1.0, 1.0, 3.0
    target_phi, shadow_phi, keep, truth = _synthetic(d=d, sigma=sigma, spread=spread)
    optimal = scipy.stats.norm.cdf(d / (sigma * np.sqrt(2)))  # ≈ 0.760
    online = metrics.summarize(attacks.lira_scores(target_phi, shadow_phi, keep), truth)
    offline = metrics.summarize(
        attacks.lira_scores(target_phi, shadow_phi, keep, online=False), truth
    )
    assert online["auc"] == pytest.approx(optimal, abs=0.02)
    assert offline["auc"] == pytest.approx(optimal, abs=0.02)
    global_auc = metrics.summarize(attacks.global_threshold_scores(target_phi), truth)["auc"]
    expected_global = scipy.stats.norm.cdf(d / np.sqrt(2 * (sigma**2 + spread**2)))  # ≈ 0.59
    assert global_auc == pytest.approx(expected_global, abs=0.03)
    assert online["auc"] > global_auc + 0.1


@pytest.mark.parametrize("masked", [False, True])
def test_matches_per_example_loop(masked):
    rng = np.random.default_rng(5)
    s, n, a = 9, 6, 3
    shadow_phi = rng.normal(size=(s, n, a))
    keep = rng.random((s, n)) < 0.5
    keep[0:2], keep[2:4] = True, False  # every example has IN and OUT shadows
    # Optionally a per-example subset of the shadows (models 0-3 always in it).
    use = (rng.random((s, n)) < 0.6) | (np.arange(s) < 4)[:, None] if masked else None
    used = np.ones((s, n), bool) if use is None else use
    target_phi = rng.normal(size=(n, a))
    got_on = attacks.lira_scores(target_phi, shadow_phi, keep, shadow_mask=use)
    got_off = attacks.lira_scores(target_phi, shadow_phi, keep, online=False, shadow_mask=use)
    got_fix = attacks.lira_scores(target_phi, shadow_phi, keep, fix_variance=True, shadow_mask=use)
    sd_in_all = np.std(shadow_phi[keep & used])
    sd_out_all = np.std(shadow_phi[~keep & used])
    norm = scipy.stats.norm
    for j in range(n):
        x_in = shadow_phi[keep[:, j] & used[:, j], j]  # [k, A]
        x_out = shadow_phi[~keep[:, j] & used[:, j], j]
        mi, mo = np.median(x_in, 0), np.median(x_out, 0)
        si, so = np.std(x_in, 0) + 1e-30, np.std(x_out, 0) + 1e-30
        x = target_phi[j]
        on = np.mean(norm.logpdf(x, mi, si) - norm.logpdf(x, mo, so))
        off = np.mean(-norm.logsf(x, mo, so))
        fix = np.mean(
            norm.logpdf(x, mi, sd_in_all + 1e-30) - norm.logpdf(x, mo, sd_out_all + 1e-30)
        )
        assert got_on[j] == pytest.approx(on, rel=1e-10)
        assert got_off[j] == pytest.approx(off, rel=1e-10)
        assert got_fix[j] == pytest.approx(fix, rel=1e-10)
    with pytest.raises(ValueError, match="shadow_mask must be a bool"):
        attacks.lira_scores(target_phi, shadow_phi, keep, shadow_mask=used[:, :2])


def test_missing_in_or_out_shadows_raise():
    target_phi, shadow_phi, keep, _ = _synthetic(n=20, s=8)
    no_out = keep.copy()
    no_out[:, [3, 7]] = True
    with pytest.raises(ValueError, match="2 of 20 examples have no OUT shadow"):
        attacks.lira_scores(target_phi, shadow_phi, no_out, online=False)
    no_in = keep.copy()
    no_in[:, 5] = False
    with pytest.raises(ValueError, match="1 of 20 examples have no IN shadow"):
        attacks.lira_scores(target_phi, shadow_phi, no_in)
    # Offline LiRA needs no IN shadows.
    assert np.isfinite(attacks.lira_scores(target_phi, shadow_phi, no_in, online=False)).all()


def test_evaluate_attacks_leave_one_out():
    rng = np.random.default_rng(2)
    m, n = 16, 500
    mu = rng.normal(scale=3.0, size=n)
    keep = rng.uniform(size=(m, n)).argsort(0) < m // 2
    phi = mu[None, :, None] + 2.0 * keep[..., None] + rng.normal(size=(m, n, 2))
    results, curves = attacks.evaluate_attacks(phi, keep, "all", num_targets=4)
    # From φ alone every attack runs except Song and Shokri (they need full posteriors).
    assert list(results) == [n for n in attacks.ATTACKS if n not in ("song", "shokri")]
    for name, res in results.items():
        assert res["num_targets"] == 4
        assert res["num_positives"] + res["num_negatives"] == 4 * n
        assert res["num_positives"] == keep[:4].sum()
        fpr, tpr = curves[name]
        assert metrics.auc(fpr, tpr) == pytest.approx(res["auc"])
    assert results["lira_online"]["auc"] > results["global_threshold"]["auc"] + 0.1
    # The pooled score of target 0 equals lira_scores with its equal-size shadow sets.
    single, _ = attacks.evaluate_attacks(phi, keep, ["lira_online"], num_targets=1, seed=4)
    drop = shadow_sets.equalizing_drop(keep, [0], seed=4)[0]
    mask = shadow_sets.shadow_mask(keep, 0, drop)
    direct = attacks.lira_scores(phi[0], phi, keep, shadow_mask=mask)
    assert single["lira_online"]["auc"] == pytest.approx(metrics.summarize(direct, keep[0])["auc"])


def test_evaluate_attacks_validation():
    phi = np.zeros((3, 4, 1))
    keep = np.zeros((3, 4), bool)
    with pytest.raises(ValueError, match="num_targets"):
        attacks.evaluate_attacks(phi, keep, "all", num_targets=4)
    with pytest.raises(ValueError, match="num_targets"):
        attacks.evaluate_attacks(phi, keep, "all", num_targets=0)
    with pytest.raises(ValueError, match="at least 2 models"):
        attacks.evaluate_attacks(phi[:1], keep[:1], "all", num_targets=1)
    with pytest.raises(ValueError, match="valid names"):
        attacks.resolve_attacks(["lira_online", "nope"])
    assert attacks.resolve_attacks("all") == list(attacks.ATTACKS)
    assert attacks.resolve_attacks("global_threshold,lira_online") == [
        "global_threshold",
        "lira_online",
    ]

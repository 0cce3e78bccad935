"""Tests for lira_jax.sample_complexity on synthetic φ with known IN/OUT separation."""

import json

import numpy as np
import pytest
import scipy.integrate
import scipy.stats

from lira_jax import attacks, metrics
from lira_jax import memorization as mz
from lira_jax import sample_complexity as sc
from lira_jax.attacks import shadow_sets
from lira_jax.data.membership import keep_mask
from lira_jax.report import curves

GROUPS = ["far", "mid", "near"]
DELTAS = np.array([5.0, 2.2, 0.5])  # IN − OUT mean of φ per group, σ = 1


def _separated(num_models=33, per_group=80, seed=0):
    """φ [M, N, 1]: μ_out ~ N(0, 0.5²) per example, μ_in = μ_out + Δ(group), σ = 1."""
    rng = np.random.default_rng(seed)
    group = np.repeat(np.arange(3), per_group)
    keep = keep_mask(seed, num_models, group.size, 0.5)
    mu_out = rng.normal(scale=0.5, size=group.size)
    phi = mu_out + DELTAS[group] * keep + rng.normal(size=keep.shape)
    return phi[:, :, None], keep, group


def _h2_numeric(mu1, s1, mu2, s2):
    f = lambda x: (
        (np.sqrt(scipy.stats.norm.pdf(x, mu1, s1)) - np.sqrt(scipy.stats.norm.pdf(x, mu2, s2))) ** 2
    )  # noqa: E501
    lo = min(mu1 - 12 * s1, mu2 - 12 * s2)
    hi = max(mu1 + 12 * s1, mu2 + 12 * s2)
    pts = [mu1, mu2]
    return 0.5 * scipy.integrate.quad(f, lo, hi, points=pts, limit=200, epsabs=1e-13)[0]


@pytest.mark.parametrize(
    "mu1,s1,mu2,s2",
    [(0, 1, 0, 1), (0, 1, 1, 1), (0, 1, 0.1, 2), (-3, 0.5, 2, 1.5), (1, 0.2, 1.3, 0.25)],
)
def test_hellinger_matches_numerical_integral(mu1, s1, mu2, s2):
    got = sc.hellinger_squared(mu1, s1, mu2, s2)
    assert float(got) == pytest.approx(_h2_numeric(mu1, s1, mu2, s2), abs=1e-9)


def test_hellinger_extremes_are_finite_and_degenerate_cases_defined():
    cases = [  # (μ₁, σ₁, μ₂, σ₂, expected H²)
        (0.0, 1e-200, 1e-201, 1e-200, -np.expm1(-0.01 / 8)),  # tiny σ, Δ = σ/10
        (0.0, 1e200, 1e200, 1e200, -np.expm1(-1 / 8)),  # huge σ, Δ = σ
        (0.0, 1.0, 0.0, 1.0, 0.0),  # identical
        (0.0, 1.0, 1e10, 1.0, 1.0),  # hugely separated
        (0.0, 1.0, 0.0, 2.0, 1 - np.sqrt(2 * 2 / 5)),  # σ ratio only
        (0.0, 0.0, 0.0, 0.0, 0.0),  # identical point masses
        (0.0, 0.0, 1.0, 0.0, 1.0),  # distinct point masses
        (0.0, 0.0, 0.0, 1.0, 1.0),  # a point mass against a Gaussian
    ]
    mu1, s1, mu2, s2, expected = (np.array(c) for c in zip(*cases, strict=True))
    h2 = sc.hellinger_squared(mu1, s1, mu2, s2)
    assert np.all(np.isfinite(h2)) and np.all((h2 >= 0) & (h2 <= 1))
    np.testing.assert_allclose(h2, expected, rtol=1e-9, atol=1e-300)
    # Symmetric in its two distributions, and broadcasts.
    np.testing.assert_allclose(sc.hellinger_squared(mu2, s2, mu1, s1), h2, rtol=1e-12)
    assert sc.hellinger_squared(np.zeros((2, 1)), 1.0, np.zeros(3), 1.0).shape == (2, 3)
    with pytest.raises(ValueError, match=">= 0"):
        sc.hellinger_squared(0, -1, 0, 1)


def test_per_example_hellinger_recovers_known_separation():
    phi, keep, group = _separated(num_models=200, per_group=100, seed=1)
    h2 = sc.per_example_hellinger_squared(phi, keep)
    for g, delta in enumerate(DELTAS):
        expected = -np.expm1(-(delta**2) / 8)  # σ_in = σ_out = 1
        # 100 IN and 100 OUT models: the fitted Δ has std ≈ 0.14, and its noise biases H²
        # up by ≈ (2/100)/8; the group median is within ≈ 0.01 of the truth.
        assert np.median(h2[group == g]) == pytest.approx(expected, abs=0.025)
    est = sc.shadow_models_estimate(h2)
    med = [np.median(est[group == g]) for g in range(3)]
    assert med[0] < med[1] < med[2]
    assert sc.shadow_models_estimate(np.array([0.0]))[0] == np.inf


def test_max_models_per_side_and_default_ks():
    assert sc.max_models_per_side(keep_mask(0, 32, 50, 0.5), num_targets=4) == 15
    assert sc.max_models_per_side(keep_mask(0, 40, 50, 0.7), num_targets=4) == 11
    assert sc.default_ks(15) == [1, 2, 4, 8, 15]
    assert sc.default_ks(16) == [1, 2, 4, 8, 16]
    assert sc.default_ks(1) == [1]


def test_selection_gives_k_distinct_in_and_out_models_per_example_without_target():
    from lira_jax.sample_complexity import _ordered, _without_target

    keep = keep_mask(2, 21, 400, 0.5)  # 10 IN, 11 OUT per example
    depth, target = 9, 3
    counts = np.zeros((21, 400))
    for draw in range(200):
        u = np.random.default_rng([7, draw]).random(keep.shape)
        for side in (keep, ~keep):
            idx = _without_target(_ordered(side, u, depth + 1), target, depth)
            assert idx.shape == (depth, 400)
            assert not (idx == target).any()
            assert np.take_along_axis(side, idx, axis=0).all()
            assert all(len(set(col)) == depth for col in idx.T[:20])
            small = _without_target(_ordered(side, u, 3), target, 2)
            np.testing.assert_array_equal(small, idx[:2])  # nested in k
            np.add.at(counts, (idx[:1], np.arange(400)[None, :]), 1)  # k = 1 choices
    # k = 1: each eligible shadow is picked with probability 1/available (uniform).
    avail_in = keep.sum(0) - keep[target]
    avail_out = (~keep).sum(0) - (~keep[target])
    eligible = np.arange(21)[:, None] != target
    freq = counts / 200
    expected = np.where(keep, 1 / avail_in, 1 / avail_out) * eligible
    assert np.abs(freq - expected).mean() < 0.02
    assert np.abs(freq.mean(1)[eligible[:, 0]] - expected.mean(1)[eligible[:, 0]]).max() < 0.01


def test_full_k_equals_lira_with_all_shadows():
    # M = 2k + 1: every example has exactly k IN and k OUT shadows for target 0.
    rng = np.random.default_rng(4)
    k, n = 6, 120
    shadow_keep = keep_mask(9, 2 * k, n, 0.5)
    keep = np.concatenate([rng.random((1, n)) < 0.5, shadow_keep])
    phi = rng.normal(size=(2 * k + 1, n, 2)) + keep[:, :, None] * rng.uniform(0, 3, n)[:, None]
    res = sc.shadow_model_curves(phi, keep, num_targets=1, num_draws=3, fpr_levels=(0.05,))
    assert res["ks"] == [1, 2, 4, 6] and res["max_k"] == 6
    for name, (online, fix) in sc.ATTACK_VARIANTS.items():
        scores = attacks.lira_scores(phi[0], phi[1:], keep[1:], online=online, fix_variance=fix)
        expected = metrics.summarize(scores, keep[0], fpr_levels=(0.05,))
        entry = res["attacks"][name]["groups"]["all"]
        assert entry["auc"]["draws"][-1] == pytest.approx([expected["auc"]] * 3, abs=1e-12)
        assert entry["auc"]["lo"][-1] == pytest.approx(entry["auc"]["hi"][-1], abs=1e-12)
        assert entry["tpr_at_fpr"]["0.05"]["median"][-1] == pytest.approx(
            expected["tpr_at_fpr"]["0.05"]
        )
        assert res["attacks"][name]["num_shadow_models"] == [
            (2 if online else 1) * x for x in (1, 2, 4, 6)
        ]


def test_all_shadows_reference_uses_the_attacks_equal_size_shadow_sets():
    rng = np.random.default_rng(5)
    m, n = 10, 300
    keep = keep_mask(3, m, n, 0.5)
    phi = rng.normal(size=(m, n, 2)) + keep[:, :, None] * rng.uniform(0, 2, n)[:, None]
    res = sc.shadow_model_curves(phi, keep, num_targets=3, num_draws=1, seed=8, ks=[1])
    for name, (online, fix) in sc.ATTACK_VARIANTS.items():
        pooled = np.stack(
            [
                attacks.lira_scores(
                    phi[t],
                    phi,
                    keep,
                    online=online,
                    fix_variance=fix,
                    shadow_mask=shadow_sets.target_shadow_mask(keep, t, seed=8),
                )
                for t in range(3)
            ]
        )
        expected = metrics.summarize(pooled.ravel(), keep[:3].ravel())["auc"]
        ref = res["attacks"][name]["groups"]["all"]["all_shadows"]
        assert ref["auc"] == pytest.approx(expected, abs=1e-12)
        assert ref["num_shadow_models"] == (8 if online else 4)  # 4 IN + 4 OUT of 10


def test_per_target_groups_restrict_each_targets_scores():
    rng = np.random.default_rng(6)
    m, n = 10, 200
    keep = keep_mask(2, m, n, 0.5)
    phi = rng.normal(size=(m, n, 1)) + keep[:, :, None]
    groups = rng.integers(0, 2, size=(3, n))
    res = sc.shadow_model_curves(
        phi, keep, num_targets=3, num_draws=1, ks=[4], groups=groups, group_names=["a", "b"]
    )
    pooled = np.stack(
        [
            attacks.lira_scores(
                phi[t], phi, keep, shadow_mask=shadow_sets.target_shadow_mask(keep, t, seed=0)
            )
            for t in range(3)
        ]
    )
    for g, name in enumerate(["a", "b"]):
        mask = groups == g
        expected = metrics.summarize(pooled[mask], keep[:3][mask])["auc"]
        entry = res["attacks"]["lira_online"]["groups"][name]
        assert entry["all_shadows"]["auc"] == pytest.approx(expected, abs=1e-12)
        assert res["groups"][name]["num_examples"] == pytest.approx(mask.sum() / 3)
    with pytest.raises(ValueError, match="groups must be integers of shape"):
        sc.shadow_model_curves(phi, keep, num_targets=3, groups=groups[:2])


@pytest.fixture(scope="module")
def separated_curves():
    phi, keep, group = _separated()
    res = sc.shadow_model_curves(
        phi,
        keep,
        num_draws=5,
        num_targets=4,
        groups=group,
        group_names=GROUPS,
        seed=0,
        attacks=["lira_online_fixed_variance", "lira_offline_fixed_variance", "lira_online"],
    )
    return res, phi, keep, group


def test_well_separated_group_needs_fewer_shadow_models(separated_curves):
    res, *_ = separated_curves
    assert res["ks"] == [1, 2, 4, 8, 15]
    assert list(res["groups"]) == ["all", *GROUPS]
    assert res["groups"]["far"]["num_examples"] == 80
    for attack in ("lira_online_fixed_variance", "lira_offline_fixed_variance"):
        reach = sc.first_k_reaching(res, attack=attack, target=0.9)
        assert reach["far"] == 1
        assert reach["mid"] is not None and reach["mid"] > reach["far"]
        assert reach["near"] is None
        groups = res["attacks"][attack]["groups"]
        mid = groups["mid"]["auc"]["median"]
        assert mid[-1] > mid[0] + 0.03  # more shadow models help the mid group
        for g, delta in zip(GROUPS, DELTAS, strict=True):
            optimal = scipy.stats.norm.cdf(delta / np.sqrt(2))
            assert groups[g]["auc"]["median"][-1] <= optimal + 0.04
            assert groups[g]["auc"]["median"][-1] == pytest.approx(
                groups[g]["all_shadows"]["auc"], abs=0.02
            )
            lo, med, hi = (np.array(groups[g]["auc"][s]) for s in ("lo", "median", "hi"))
            assert np.all(lo <= med) and np.all(med <= hi)


def test_curves_are_seeded_and_json_serialisable(separated_curves):
    res, phi, keep, group = separated_curves
    text = json.dumps(res, allow_nan=False)
    again = sc.shadow_model_curves(
        phi[:, :40], keep[:, :40], num_draws=2, num_targets=2, ks=[1, 2], seed=3
    )
    same = sc.shadow_model_curves(
        phi[:, :40], keep[:, :40], num_draws=2, num_targets=2, ks=[1, 2], seed=3
    )
    other = sc.shadow_model_curves(
        phi[:, :40], keep[:, :40], num_draws=2, num_targets=2, ks=[1, 2], seed=4
    )
    assert again == same and again != other
    assert "NaN" not in text and "Infinity" not in text


def test_empty_or_one_sided_group_gives_none():
    phi, keep, _ = _separated(per_group=10)
    groups = np.zeros(30, np.int64)  # group "b" is empty
    res = sc.shadow_model_curves(
        phi, keep, num_draws=2, num_targets=2, ks=[1], groups=groups, group_names=["a", "b"]
    )
    assert res["attacks"]["lira_online"]["groups"]["b"]["auc"]["median"] == [None]
    assert res["groups"]["b"]["num_examples"] == 0
    json.dumps(res, allow_nan=False)


def test_compare_with_hellinger_and_spearman(separated_curves):
    res, phi, keep, group = separated_curves
    h2 = sc.per_example_hellinger_squared(phi, keep)
    table = sc.compare_with_hellinger(res, h2, group, GROUPS, target=0.9)
    assert table["far"]["measured_k"] == 1 and table["near"]["measured_k"] is None
    assert table["far"]["median_models_estimate"] < table["mid"]["median_models_estimate"]
    assert table["mid"]["median_models_estimate"] < table["near"]["median_models_estimate"]
    json.dumps(table, allow_nan=False)
    with pytest.raises(ValueError, match="same groups"):
        sc.compare_with_hellinger(res, h2)

    mem = mz.memorization(keep, phi[:, :, 0] > 0)
    score = mz.privacy_score(phi, keep)
    rho = sc.memorization_privacy_spearman(mem, score)
    expected = scipy.stats.spearmanr(mem, score)
    assert rho["rho"] == pytest.approx(expected.statistic)
    assert rho["pvalue"] == pytest.approx(expected.pvalue)
    assert rho["rho"] > 0.5 and rho["num_dropped"] == 0
    mem_nan = mem.copy()
    mem_nan[:3] = np.nan
    assert sc.memorization_privacy_spearman(mem_nan, score)["num_dropped"] == 3
    assert sc.memorization_privacy_spearman(np.ones(10), np.arange(10.0))["rho"] is None


def test_errors():
    phi, keep, group = _separated(per_group=10)
    with pytest.raises(ValueError, match=r"ks=\[1, 64\] must lie in \[1, 15\]"):
        sc.shadow_model_curves(phi, keep, ks=[1, 64], num_targets=2)
    with pytest.raises(ValueError, match="Unknown"):
        sc.shadow_model_curves(phi, keep, attacks=["lira_magic"])
    with pytest.raises(ValueError, match="groups"):
        sc.shadow_model_curves(phi, keep, groups=group[:5])
    with pytest.raises(ValueError, match="group_names"):
        sc.shadow_model_curves(phi, keep, groups=group, group_names=["a"])
    bad_keep = keep.copy()
    bad_keep[:, 0] = True
    with pytest.raises(ValueError, match="no IN or no OUT"):
        sc.shadow_model_curves(phi, bad_keep)
    bad_phi = phi.copy()
    bad_phi[2, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"model\(s\) \[2\]"):
        sc.shadow_model_curves(bad_phi, keep)
    with pytest.raises(ValueError, match="metric"):
        sc.first_k_reaching(
            sc.shadow_model_curves(phi, keep, ks=[1], num_draws=1, num_targets=1),
            attack="lira_online",
            metric="accuracy",
        )


def test_shadow_model_curve_plot(separated_curves, tmp_path):
    res, *_ = separated_curves
    path = curves.plot_shadow_model_curves(res, tmp_path / "curves.png")
    tpr = curves.plot_shadow_model_curves(
        res, tmp_path / "tpr.png", attack="lira_online", metric="tpr_at_fpr:0.01", target=None
    )
    for p in (path, tpr):
        with open(p, "rb") as f:
            data = f.read()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    with pytest.raises(ValueError, match="not in the result"):
        curves.plot_shadow_model_curves(res, tmp_path / "x.png", attack="lira_offline")


# -- Predicted against measured shadow models, on planted effect sizes ----------------------

PLANTED = np.array([0.5, 1.0, 2.0, 4.0])  # IN − OUT gap of φ per group, in units of σ = 1
PLANTED_KS = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128]


@pytest.fixture(scope="module")
def planted_effects():
    """A paired store of 258 models: 4 groups of 60 examples with planted effect sizes d
    (φ_in ~ N(μ_n + d, 1), φ_out ~ N(μ_n, 1), μ_n ~ N(0, 1) per example), and the shadow
    models per side each group needs, measured by subsampling (fraction 0.9 of the
    attack's all-models AUC advantage)."""
    from lira_jax.data.membership import paired_keep_mask

    rng = np.random.default_rng(0)
    group = np.repeat(np.arange(PLANTED.size), 60)
    keep = paired_keep_mask(0, 258, group.size)
    mu = rng.normal(size=group.size)
    phi = (mu + PLANTED[group] * keep + rng.normal(size=keep.shape))[:, :, None]
    names = [f"d={d:g}" for d in PLANTED]
    curves = sc.shadow_model_curves(
        phi,
        keep,
        ks=PLANTED_KS,
        num_draws=6,
        num_targets=16,
        groups=group,
        group_names=names,
        attacks=["lira_online_fixed_variance"],
    )
    measured = sc.models_needed_by_subsampling(curves, fraction=0.9)
    return phi, keep, group, [measured[n] for n in names]


FACTOR = 3.0  # the stated agreement between the 1/H² prediction and subsampling


def test_predicted_models_match_subsampling_within_a_factor(planted_effects):
    phi, keep, group, measured = planted_effects
    # Measured: more models for smaller effects, from 1 (d = 4) to tens (d = 0.5).
    assert all(k is not None for k in measured) and measured == sorted(measured, reverse=True)
    assert measured[-1] == 1 and measured[0] >= 16
    every = sc.shadow_models_needed(phi, keep)
    pilot = sc.shadow_models_needed(phi[:16], keep[:16])
    for g, k in enumerate(measured):
        predicted = np.median(every.per_side[group == g])
        assert 1 / FACTOR <= k / predicted <= FACTOR, (PLANTED[g], k, predicted)
        # From a pilot of 16 models (8 per side): the point estimate within the factor
        # where the effect is resolved (d >= 1), and the interval covering the measurement
        # for every effect (d = 0.5 is not resolved: its interval reaches far above). The
        # measurement is a grid point: the need lies in (previous grid point, k].
        lo = np.median(pilot.per_side_lo[group == g])
        hi = np.median(pilot.per_side_hi[group == g])
        before = max([x for x in PLANTED_KS if x < k], default=0)
        assert np.round(lo) <= k and hi > before, (PLANTED[g], k, lo, hi)  # whole models
        if PLANTED[g] >= 1:
            point = np.median(pilot.per_side[group == g])
            assert 1 / FACTOR <= k / point <= FACTOR, (PLANTED[g], k, point)
    assert np.median(pilot.per_side_hi[group == 0]) > 10 * measured[0]


def test_shadow_models_needed_against_the_formula_and_its_bias_correction():
    rng = np.random.default_rng(3)
    keep = keep_mask(1, 40, 2000, 0.5)
    gap = np.repeat([0.0, 1.0, 3.0], [1000, 500, 500])
    phi = gap * keep + rng.normal(scale=2.0, size=keep.shape)
    got = sc.shadow_models_needed(phi, keep, queries="identity", level=0.9)
    assert got.sigma_in == pytest.approx(2.0, rel=0.02) and got.sigma_out == pytest.approx(
        2.0, rel=0.02
    )
    # An independent computation for one example.
    n = 7
    x_in, x_out = phi[keep[:, n], n], phi[~keep[:, n], n]
    se = np.sqrt(got.sigma_in**2 / x_in.size + got.sigma_out**2 / x_out.size)
    d_hat = x_in.mean() - x_out.mean()
    assert got.gap[n] == pytest.approx(d_hat) and got.gap_se[n] == pytest.approx(se)
    corrected = np.sqrt(max(d_hat**2 - se**2, 0.0))
    h2 = sc.hellinger_squared(corrected, got.sigma_in, 0.0, got.sigma_out)
    assert got.per_side[n] == pytest.approx(1.0 / h2)
    upper = abs(d_hat) + scipy.stats.norm.ppf(0.95) * se
    assert got.per_side_lo[n] == pytest.approx(
        1.0 / sc.hellinger_squared(upper, got.sigma_in, 0.0, got.sigma_out)
    )
    # Without membership signal the corrected gap is 0 for about half the examples; the
    # uncorrected one would predict ~8σ²/s² models for all of them.
    null = got.gap[:1000]
    assert 0.35 < np.mean(got.h2[:1000] < 1e-4) < 0.8 and np.abs(null).mean() > 0.3
    # The gap's interval covers the planted gap at about its level.
    covered = np.abs(got.gap - gap) <= scipy.stats.norm.ppf(0.95) * got.gap_se
    assert covered.mean() == pytest.approx(0.9, abs=0.03)
    with pytest.raises(ValueError, match="fewer than 2 IN"):
        sc.shadow_models_needed(phi[:3], keep[:3])
    res = sc.shadow_model_curves(phi[:, :50, None], keep[:, :50], num_draws=2, num_targets=2)
    res_no_ref = sc.shadow_model_curves(
        phi[:, :50, None], keep[:, :50], num_draws=2, num_targets=2, include_all_shadows=False
    )
    assert set(sc.models_needed_by_subsampling(res)) == {"all"}
    with pytest.raises(ValueError, match="include_all_shadows=True"):
        sc.models_needed_by_subsampling(res_no_ref)

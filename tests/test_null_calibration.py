"""Null calibration: on models whose outputs do not depend on membership, every registered
attack must score AUC 0.5 up to sampling error, in the leave-one-model-out protocol.

Stores: `lira_jax.data.null.null_logits` (a per-example signal shared by all models plus
per-model noise, balanced keep mask), N = 2,000 examples, 2 queries, 10 classes, every
model a target, M ∈ {8, 16, 64}, seeds 0, 1, 2.

Bound: |mean over the 3 seeds of the pooled AUC − 0.5| <= 4 SE, SE = √(Σ_s SE_s²) / 3,
where SE_s is the standard error of seed s's pooled AUC from DeLong's structural
components summed per example (the clustered estimator of Obuchowski 1997): the M scores
of one example are correlated through its shared signal and shadow statistics, so the
examples, not the (target, example) pairs, are the independent units. On 20 seeds at
M = 16, N = 1,000 the spread of the AUC over seeds was 0.84–1.32 times this SE
(docs/results.md, "Null calibration"), so 4 SE is at least ~3 standard deviations; with the seeds
below the largest |AUC − 0.5| / SE is 2.0. Before the shadow
sets were equalised, this test failed for the LiRA variants at M = 8 and 16 (e.g. LiRA
online 0.38 at M = 8). A new entry of `attacks.ATTACKS` is covered automatically.

Per-group results must not leak either: memorization buckets estimated from each target's
own shadow sets keep every bucket at 0.5 (the same bound), while buckets estimated from
all models, the target included, do not.
"""

import numpy as np
import pytest
import scipy.stats

from lira_jax import attacks, memorization, metrics
from lira_jax.data.membership import keep_mask
from lira_jax.data.null import null_logits

_SEEDS = (0, 1, 2)
_NUM_EXAMPLES = 2000


def clustered_auc_and_se(scores: np.ndarray, truth: np.ndarray, units: np.ndarray):
    """AUC (ties count ½) and its DeLong standard error with scores clustered by unit."""
    pos, neg = truth, ~truth
    num_pos, num_neg = int(pos.sum()), int(neg.sum())
    rank_all = scipy.stats.rankdata(scores)
    v10 = (rank_all[pos] - scipy.stats.rankdata(scores[pos])) / num_neg
    v01 = (num_pos - (rank_all[neg] - scipy.stats.rankdata(scores[neg]))) / num_pos
    auc = v10.mean()
    num_units = int(units.max()) + 1
    dev10 = np.bincount(units[pos], v10 - auc, minlength=num_units)
    dev01 = np.bincount(units[neg], v01 - auc, minlength=num_units)
    k = np.count_nonzero(np.bincount(units, minlength=num_units))
    scale = k / (k - 1)
    s10 = scale * np.sum(dev10**2) / num_pos
    s01 = scale * np.sum(dev01**2) / num_neg
    s11 = scale * np.sum(dev10 * dev01)
    var = s10 / num_pos + s01 / num_neg + 2 * s11 / (num_pos * num_neg)
    return auc, float(np.sqrt(var))


def test_clustered_standard_error_reduces_to_delong_and_tracks_the_spread():
    rng = np.random.default_rng(0)
    # One score per unit: the clustered estimator is DeLong's; under the null its mean
    # over many draws is close to the Hanley-McNeil value √((P + Q + 1)/(12PQ)).
    ses, aucs = [], []
    for _ in range(200):
        truth = rng.random(400) < 0.5
        scores = rng.normal(size=400)
        auc, se = clustered_auc_and_se(scores, truth, np.arange(400))
        assert auc == pytest.approx(metrics.auc(*metrics.roc_curve(scores, truth)))
        ses.append(se)
        aucs.append(auc)
    assert np.mean(ses) == pytest.approx(np.sqrt(401 / (12 * 200 * 200)), rel=0.05)
    assert np.std(aucs) == pytest.approx(np.mean(ses), rel=0.15)
    # Perfectly correlated copies of a unit's score: the clustered SE sees one unit, not 4.
    truth = rng.random(400) < 0.5
    scores = rng.normal(size=400)
    _, se_one = clustered_auc_and_se(scores, truth, np.arange(400))
    _, se_rep = clustered_auc_and_se(
        np.tile(scores, 4), np.tile(truth, 4), np.tile(np.arange(400), 4)
    )
    assert se_rep == pytest.approx(se_one, rel=0.02)


@pytest.fixture(scope="module", params=[8, 16, 64], ids=lambda m: f"M{m}")
def null_results(request):
    """{attack: [(auc, se) per seed]} for every registered attack at one M."""
    num_models = request.param
    targets = np.arange(num_models)
    out = {name: [] for name in attacks.ATTACKS}
    for seed in _SEEDS:
        logits, labels, keep = null_logits(num_models, _NUM_EXAMPLES, seed=seed)
        bank = attacks.signal_bank_from_logits(logits, labels, keep)
        truth = keep.ravel()
        units = np.tile(np.arange(_NUM_EXAMPLES), num_models)
        for name, spec in attacks.ATTACKS.items():
            scores = spec.fn(bank, targets, seed=seed).scores
            out[name].append(clustered_auc_and_se(scores.ravel(), truth, units))
    return num_models, out


def test_every_registered_attack_has_auc_one_half_under_the_null(null_results):
    num_models, results = null_results
    assert set(results) == set(attacks.ATTACKS)
    failures = []
    for name, per_seed in results.items():
        auc = np.array([a for a, _ in per_seed])
        se = np.sqrt(np.sum([s**2 for _, s in per_seed])) / len(per_seed)
        assert 0 < se < 0.02, (name, se)
        if abs(auc.mean() - 0.5) > 4 * se:
            failures.append(f"{name}: mean AUC {auc.mean():.4f}, bound 0.5 ± {4 * se:.4f}")
    assert not failures, f"M={num_models}: " + "; ".join(failures)


def test_memorization_groups_from_the_targets_shadows_are_calibrated_under_the_null():
    # Groups estimated from all models (the target included) leak the target's membership
    # into the grouping: a target's members that it got right look memorized. Estimated
    # from each target's shadow sets (`target_memorization`), every group stays at 0.5.
    num_models, num_examples = 16, 2000
    names = ["lira_online_fixed_variance", "global_threshold", "sablayrolles"]
    targets = np.arange(num_models)
    per_target, all_models = {}, {}
    for seed in _SEEDS:
        logits, labels, keep = null_logits(
            num_models, num_examples, margin=0.5, spread=1.0, seed=seed
        )
        bank = attacks.signal_bank_from_logits(logits, labels, keep, signal_names=["phi"])
        correct = logits[:, :, 0].argmax(-1) == labels
        leaky = np.broadcast_to(
            memorization.bucketize(memorization.memorization(keep, correct)), keep.shape
        )
        own = memorization.bucketize(
            memorization.target_memorization(keep, correct, targets, seed=seed).ravel()
        ).reshape(keep.shape)
        units = np.broadcast_to(np.arange(num_examples), keep.shape)
        for name in names:
            scores = attacks.ATTACKS[name].fn(bank, targets, seed=seed).scores
            for buckets, out in ((own, per_target), (leaky, all_models)):
                for g in range(3):
                    sel = buckets == g
                    if keep[sel].all() or not keep[sel].any():
                        continue
                    out.setdefault((name, g), []).append(
                        clustered_auc_and_se(scores[sel], keep[sel], units[sel])
                    )

    def outside(results):
        bad = []
        for key, per_seed in results.items():
            auc = np.mean([a for a, _ in per_seed])
            se = np.sqrt(np.sum([s**2 for _, s in per_seed])) / len(per_seed)
            if abs(auc - 0.5) > 4 * se:
                bad.append(f"{key}: {auc:.3f} ± {4 * se:.3f}")
        return bad

    assert not outside(per_target), outside(per_target)
    assert outside(all_models)  # the leak this avoids is visible at this size


def test_every_registered_attack_on_external_targets_has_auc_one_half_under_the_null():
    # The second protocol: targets the store did not train (the last rows of a bank with
    # `num_external`), each against all M store models. Their membership is drawn
    # independently of the store's mask: as another row of one balanced mask over M + T
    # models it would set the store's IN count of every example (K − 1 for the target's
    # members, K for its non-members), a leak that scored label-only LiRA at AUC 0.43.
    num_models, num_targets = 16, 6
    targets = np.arange(num_models, num_models + num_targets)
    out = {name: [] for name in attacks.ATTACKS}
    for seed in _SEEDS:
        logits, labels, _ = null_logits(num_models + num_targets, _NUM_EXAMPLES, seed=seed)
        keep = np.zeros((num_models + num_targets, _NUM_EXAMPLES), bool)
        keep[:num_models] = keep_mask(seed, num_models, _NUM_EXAMPLES, 0.5)
        truth = np.random.default_rng([seed, 1]).random((num_targets, _NUM_EXAMPLES)) < 0.5
        bank = attacks.signal_bank_from_logits(logits, labels, keep, num_external=num_targets)
        units = np.tile(np.arange(_NUM_EXAMPLES), num_targets)
        for name, spec in attacks.ATTACKS.items():
            options = {"population": "all"} if name.startswith("rmia") else {}
            scores = spec.fn(bank, targets, seed=seed, **options).scores
            out[name].append(clustered_auc_and_se(scores.ravel(), truth.ravel(), units))
        # Each external target against all store models: LiRA equals the explicit form.
        want = attacks.lira_scores(bank.phi[targets[0]], bank.phi[:num_models], keep[:num_models])
        got = attacks.ATTACKS["lira_online"].fn(bank, targets[:1], seed=seed).scores[0]
        np.testing.assert_allclose(got, want, rtol=1e-9)
    failures = []
    for name, per_seed in out.items():
        auc = np.array([a for a, _ in per_seed])
        se = np.sqrt(np.sum([s**2 for _, s in per_seed])) / len(per_seed)
        if abs(auc.mean() - 0.5) > 4 * se:
            failures.append(f"{name}: mean AUC {auc.mean():.4f}, bound 0.5 ± {4 * se:.4f}")
    assert not failures, "; ".join(failures)

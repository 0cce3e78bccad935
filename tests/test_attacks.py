"""Tests of the attack suite against direct per-example loops and known orderings."""

import numpy as np
import pytest

from lira_jax import attacks, metrics, signals
from lira_jax.attacks import lira as lira_lib
from lira_jax.attacks import rmia as rmia_lib
from lira_jax.attacks import shadow_sets
from lira_jax.attacks import shokri as shokri_lib


def _one_hot(labels, c):
    return np.arange(c) == labels[:, None]


def _logits_case(m=16, n=600, a=2, c=4, gap=1.5, spread=2.0, seed=0):
    """Logits whose label margin = per-example difficulty + gap·IN + noise (balanced keep)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    difficulty = rng.normal(scale=spread, size=n)
    keep = rng.uniform(size=(m, n)).argsort(0) < m // 2
    margin = difficulty[None, :, None] + gap * keep[..., None] + 0.5 * rng.normal(size=(m, n, a))
    logits = (
        rng.normal(size=(m, n, a, c)) + _one_hot(labels, c)[None, :, None, :] * margin[..., None]
    )
    return logits.astype(np.float32), labels, keep


@pytest.fixture(scope="module")
def case():
    logits, labels, keep = _logits_case()
    return logits, labels, keep, attacks.signal_bank_from_logits(logits, labels, keep)


@pytest.fixture(scope="module")
def small_bank():
    """A tiny bank with tied losses and every example IN and OUT for >= 2 models."""
    rng = np.random.default_rng(7)
    m, n = 7, 40
    keep = rng.random((m, n)) < 0.5
    keep[:2], keep[2:4] = True, False
    loss = np.round(rng.exponential(size=(m, n)), 1)  # rounding creates ties
    mentr = np.round(rng.exponential(size=(m, n)), 1)
    p_y = rng.uniform(0.01, 1.0, size=(m, n))
    labels = rng.integers(0, 3, n)
    return attacks.SignalBank(keep=keep, loss=loss, p_y=p_y, mentr=mentr, labels=labels)


# ---------------------------------------------------------------- signals and bank


def test_bank_from_logits_matches_signals_and_ignores_chunking(case):
    logits, labels, keep, bank = case
    direct = signals.signal_set(logits, labels, example_axis=1)
    np.testing.assert_allclose(bank.phi, direct["phi"], rtol=1e-12)
    np.testing.assert_allclose(bank.loss, direct["loss"].mean(-1), rtol=1e-12)
    np.testing.assert_allclose(bank.p_y, direct["p_y"].mean(-1), rtol=1e-12)
    np.testing.assert_allclose(bank.mentr, direct["mentr"].mean(-1), rtol=1e-12)
    mean_probs = direct["probs"].mean(2)
    n = np.arange(labels.size)
    np.testing.assert_allclose(bank.posteriors[..., 0], mean_probs[:, n, labels], rtol=1e-6)
    others = np.sort(np.where(_one_hot(labels, 4)[None], -1, mean_probs), -1)[..., ::-1][..., :3]
    np.testing.assert_allclose(bank.posteriors[..., 1:], others, rtol=1e-6)
    tiny = attacks.signal_bank_from_logits(logits, labels, keep, chunk_elements=1)
    for name in ("phi", "loss", "p_y", "mentr", "posteriors"):
        np.testing.assert_array_equal(getattr(tiny, name), getattr(bank, name))
    only = attacks.signal_bank_from_logits(logits, labels, keep, signal_names=["phi"])
    assert only.mentr is None and only.posteriors is None
    assert only.available == {"phi", "loss", "p_y", "labels"}


def test_bank_rejects_bad_logits_and_shapes(case):
    logits, labels, keep, _ = case
    bad = logits.copy()
    bad[3, 5, 0, 1] = np.nan
    bad[9, 0, 1, 0] = np.inf
    with pytest.raises(ValueError, match=r"NaN/inf for model\(s\) \[3, 9\]"):
        attacks.signal_bank_from_logits(bad, labels, keep, chunk_elements=1)
    with pytest.raises(ValueError, match="keep.shape"):
        attacks.signal_bank_from_logits(logits, labels, keep[:, :5])
    with pytest.raises(ValueError, match="at least 2 models"):
        attacks.SignalBank(keep=keep[:1])
    with pytest.raises(ValueError, match="phi must have 3 dims"):
        attacks.SignalBank(keep=keep, phi=np.zeros(keep.shape))
    with pytest.raises(ValueError, match="needs signal"):
        attacks.song_attack(attacks.SignalBank(keep=keep, phi=np.zeros(keep.shape + (1,))), [0])


# ---------------------------------------------------------------- each attack vs a loop


def _equalized(keep, targets, seed=0):
    """{target: its shadow mask [M, N]} from the public shadow-set function."""
    return {int(t): shadow_sets.target_shadow_mask(keep, t, seed) for t in targets}


@pytest.mark.parametrize("online", [True, False])
@pytest.mark.parametrize("fix_variance", [True, False])
def test_lira_leave_one_out_equals_explicit_shadows(online, fix_variance, monkeypatch):
    # Tiny blocks, so that the 25 examples span 13 scoring blocks and 5 summary chunks.
    monkeypatch.setattr(lira_lib, "_BLOCK_ELEMENTS", 2 * 9 * 3)
    monkeypatch.setattr(lira_lib, "_CHUNK_ELEMENTS", 5 * 9 * 3)
    rng = np.random.default_rng(3)
    m, n, a = 9, 25, 3
    phi = rng.normal(size=(m, n, a))
    phi[:, :6] = np.round(phi[:, :6])  # ties, including all-equal groups
    keep = rng.random((m, n)) < 0.5
    keep[:3], keep[3:6] = True, False  # >= 2 IN and 2 OUT shadows whichever the target
    bank = attacks.SignalBank(keep=keep, phi=phi)
    got = attacks.lira_attack(bank, np.arange(m), online=online, fix_variance=fix_variance, seed=2)
    for t, mask in _equalized(keep, np.arange(m), seed=2).items():
        ref = attacks.lira_scores(
            phi[t], phi, keep, online=online, fix_variance=fix_variance, shadow_mask=mask
        )
        np.testing.assert_allclose(got.scores[t], ref, rtol=1e-9, atol=1e-9)


def test_fixed_variance_lira_leaves_the_target_out_of_sigma_in_every_block():
    # The case: N = 1,500, A = 5, 16 targets (two scoring blocks of examples). The
    # pooled σ used to drop the target's values only within the block being scored.
    rng = np.random.default_rng(11)
    m, n, a = 17, 1500, 5
    keep = rng.uniform(size=(m, n)).argsort(0) < 8
    phi = rng.normal(size=n)[None, :, None] + 3.0 * keep[..., None] + rng.normal(size=(m, n, a))
    bank = attacks.SignalBank(keep=keep, phi=phi)
    targets = np.arange(16)
    assert n > lira_lib._BLOCK_ELEMENTS // (16 * a)  # more than one block
    for online in (True, False):
        got = attacks.lira_attack(bank, targets, online=online, fix_variance=True).scores
        for t, mask in _equalized(keep, targets).items():
            ref = attacks.lira_scores(
                phi[t], phi, keep, online=online, fix_variance=True, shadow_mask=mask
            )
            np.testing.assert_allclose(got[t], ref, rtol=1e-10, atol=1e-10)


def test_lira_undefined_with_too_few_shadows():
    rng = np.random.default_rng(0)
    keep = (np.arange(6)[:, None] + np.arange(10)) % 2 == 0  # 3 IN, 3 OUT per example
    keep[:, 3] = [True, True, True, True, False, False]
    bank = attacks.SignalBank(keep=keep, phi=rng.normal(size=(6, 10, 1)))
    # Example 3 has 2 OUT models, so every example gets a single OUT shadow for every target
    # (one OUT model fewer than the sparsest example has): no per-example σ, whatever the
    # target, but the fixed-variance variant is defined.
    for target in (0, 4):
        with pytest.raises(
            attacks.AttackUndefined, match=f"a single OUT shadow model when model {target}"
        ):
            attacks.lira_attack(bank, [target], online=False)
        assert np.isfinite(
            attacks.lira_attack(bank, [target], online=False, fix_variance=True).scores
        ).all()
    keep[:, 2] = [True, True, True, True, True, False]  # only model 5 is OUT
    bank = attacks.SignalBank(keep=keep, phi=rng.normal(size=(6, 10, 1)))
    # The mask is no longer balanced: every example is cut to the sparsest one's counts.
    with pytest.raises(attacks.AttackUndefined, match="10 of 10 examples have no OUT shadow.*0"):
        attacks.lira_attack(bank, [0], online=False, fix_variance=True)


def test_yeom_matches_loop(small_bank):
    bank = small_bank
    out = attacks.yeom_attack(bank, [0, 4, 6])
    for i, t in enumerate([0, 4, 6]):
        train = [bank.loss[m, j] for m in range(7) if m != t for j in range(40) if bank.keep[m, j]]
        assert out.threshold[i, 0] == pytest.approx(-np.mean(train), rel=1e-12)
        np.testing.assert_array_equal(out.scores[i], -bank.loss[t])


def test_sablayrolles_matches_loop(small_bank):
    bank = small_bank
    out = attacks.sablayrolles_attack(bank, np.arange(7), seed=5)
    for t, use in _equalized(bank.keep, np.arange(7), seed=5).items():
        for j in range(40):
            ins = [bank.loss[m, j] for m in range(7) if use[m, j] and bank.keep[m, j]]
            outs = [bank.loss[m, j] for m in range(7) if use[m, j] and not bank.keep[m, j]]
            tau = (np.mean(ins) + np.mean(outs)) / 2
            assert out.scores[t, j] == pytest.approx(tau - bank.loss[t, j], abs=1e-12)


def _continuous_log_odds(refs, x, fallback):
    """The reference attack's score, from its definition, for one target loss x."""
    refs = np.sort(refs)
    k = refs.size
    below, equal = np.sum(refs < x), np.sum(refs == x)
    h = (refs[-1] - refs[0]) / (k - 1) if k > 1 and refs[-1] > refs[0] else fallback
    if equal:
        f = (below + equal / 2) / k
    elif below == 0:
        f = 0.5 / k * np.exp((x - refs[0]) / h)
    elif below == k:
        f = 1 - 0.5 / k * np.exp(-(x - refs[-1]) / h)
    else:
        lo, hi = refs[below - 1], refs[below]
        f = (below - 0.5 + (x - lo) / (hi - lo)) / k
    return np.log((1 - f) / f)


def test_reference_matches_continuous_percentile_loop(small_bank):
    bank = small_bank
    out = attacks.reference_attack(bank, np.arange(7), seed=1)
    for t, use in _equalized(bank.keep, np.arange(7), seed=1).items():
        refs = [bank.loss[use[:, j] & ~bank.keep[:, j], j] for j in range(40)]
        spacings = [
            (r.max() - r.min()) / (r.size - 1) for r in refs if r.size > 1 and r.max() > r.min()
        ]
        for j in range(40):
            x = bank.loss[t, j]
            fallback = np.median(spacings) if spacings else 1.0
            expected = _continuous_log_odds(refs[j], x, fallback)
            assert out.scores[t, j] == pytest.approx(expected, rel=1e-9, abs=1e-12), (t, j)


def test_reference_breaks_ties_at_the_low_fpr_end():
    # Members' losses fall below all 15 references: a step CDF gives them all one score.
    rng = np.random.default_rng(0)
    m, n = 16, 4000
    keep = rng.uniform(size=(m, n)).argsort(0) < m // 2
    difficulty = rng.exponential(size=n)
    loss = difficulty * np.exp(rng.normal(scale=0.3, size=(m, n)) - 3.0 * keep)
    bank = attacks.SignalBank(keep=keep, loss=loss)
    scores = attacks.reference_attack(bank, np.arange(4)).scores
    truth = keep[:4].ravel()
    below_all = (scores > np.log(2 * 15 - 1)).ravel()  # F < ½/15: under every reference
    assert below_all[truth].mean() > 0.5 and np.unique(scores.ravel()[below_all]).size > 1000
    summary = metrics.summarize(scores.ravel(), truth)
    assert summary["tpr_at_fpr"]["0.01"] > 0.1


def _rmia_loop(p, keep, t, use, online, a, gamma, population):
    """RMIA scores of model t by pairwise likelihood ratios, references `use` [M, N]."""
    n = keep.shape[1]
    ratio = np.empty(n)
    for j in range(n):
        if online:
            ref = np.mean(p[use[:, j], j])
        else:
            p_out = np.mean(p[use[:, j] & ~keep[:, j], j])
            ref = 0.5 * ((1 + a) * p_out + (1 - a))
        ratio[j] = p[t, j] / ref
    scores = np.empty(n)
    for x in range(n):
        pop = (np.arange(n) != x) & ((population == "all") | ~keep[t])
        scores[x] = np.mean(ratio[x] / ratio[pop] > gamma)
    return scores


@pytest.mark.parametrize(
    "online,gamma,population", [(True, 2.0, "out"), (False, 2.0, "out"), (True, 0.8, "all")]
)
def test_rmia_matches_pairwise_loop(small_bank, online, gamma, population):
    # Model 1 trains on every example, so its population of non-members is empty.
    with pytest.raises(attacks.AttackUndefined, match="population of target model 1 is empty"):
        attacks.rmia_attack(small_bank, [1])
    bank, a = small_bank, 0.3
    out = attacks.rmia_attack(
        bank, [4, 5], online=online, gamma=gamma, population=population, seed=3
    )
    for i, (t, use) in enumerate(_equalized(bank.keep, [4, 5], seed=3).items()):
        expected = _rmia_loop(bank.p_y, bank.keep, t, use, online, a, gamma, population)
        np.testing.assert_allclose(out.scores[i], expected, atol=1e-12)
    assert out.extras["gamma"] == gamma


def test_rmia_auto_a_is_chosen_on_the_paired_model(case):
    *_, bank = case
    targets = [2, 3]
    out = attacks.rmia_attack(bank, targets, online=False, gamma=1.0, a="auto", seed=1)
    p, keep = bank.p_y, bank.keep
    chosen = []
    for i, t in enumerate(targets):
        paired = t ^ 1
        use = shadow_sets.equalized_shadow_mask(keep, [t, paired], seed=1)
        assert not use[[t, paired]].any()
        aucs = []
        for a in rmia_lib.A_GRID:
            scores = _rmia_loop(p, keep, paired, use, False, a, 1.0, "out")
            aucs.append(metrics.summarize(scores, keep[paired])["auc"])
        best = rmia_lib.A_GRID[int(np.argmax(aucs))]
        chosen.append(best)
        target_use = _equalized(keep, [t], seed=1)[t]
        expected = _rmia_loop(p, keep, t, target_use, False, best, 1.0, "out")
        np.testing.assert_allclose(out.scores[i], expected, atol=1e-12)
    assert out.extras["a"] == pytest.approx(np.mean(chosen))
    assert sum(out.extras["a_chosen"].values()) == 2
    with pytest.raises(ValueError, match="'auto'"):
        attacks.rmia_attack(bank, targets, online=False, a="best")


def test_song_matches_brute_force_thresholds(small_bank):
    bank = small_bank
    out = attacks.song_attack(bank, [0, 3], seed=2)
    for i, (t, use) in enumerate(_equalized(bank.keep, [0, 3], seed=2).items()):
        for c in range(3):
            cols = np.flatnonzero(bank.labels == c)
            pairs = [(m, j) for m in range(7) for j in cols if use[m, j]]
            v_in = [-bank.mentr[m, j] for m, j in pairs if bank.keep[m, j]]
            v_out = [-bank.mentr[m, j] for m, j in pairs if not bank.keep[m, j]]
            best, best_obj = None, -1
            for thr in sorted(set(v_in + v_out), reverse=True):
                obj = 0.5 * (np.mean(np.array(v_in) >= thr) + np.mean(np.array(v_out) < thr))
                if obj > best_obj + 1e-15:
                    best, best_obj = thr, obj
            np.testing.assert_allclose(out.scores[i, cols], -bank.mentr[t, cols] - best)
    assert out.threshold == 0.0 and set(out.extras["class_thresholds"]) == {"0", "1", "2"}


def test_song_subsampled_pool_is_seeded(case):
    *_, bank = case
    a = attacks.song_attack(bank, [0, 1], max_pool=500, seed=1).scores
    b = attacks.song_attack(bank, [0, 1], max_pool=500, seed=1).scores
    np.testing.assert_array_equal(a, b)
    full = attacks.song_attack(bank, [0, 1]).scores
    truth = bank.keep[:2].ravel()
    auc_sub = metrics.summarize(a.ravel(), truth)["auc"]
    assert auc_sub == pytest.approx(metrics.summarize(full.ravel(), truth)["auc"], abs=0.03)


# Shokri: every call below uses the same shapes (4 folds x 4 classes x 256 pairs) so the
# training step compiles once.
_SHOKRI = dict(max_train_per_class=256, num_epochs=10, batch_size=64, num_folds=4)


def test_shokri_learns_and_is_deterministic(case):
    *_, bank = case
    targets = np.arange(4)
    out = attacks.shokri_attack(bank, targets, seed=3, **_SHOKRI)
    again = attacks.shokri_attack(bank, targets, seed=3, **_SHOKRI)
    np.testing.assert_array_equal(out.scores, again.scores)
    assert out.extras["num_folds"] == 4 and out.threshold == 0.0
    auc = metrics.summarize(out.scores.ravel(), bank.keep[targets].ravel())["auc"]
    yeom_auc = metrics.summarize(
        attacks.yeom_attack(bank, targets).scores.ravel(), bank.keep[targets].ravel()
    )["auc"]
    assert auc > 0.6 and auc == pytest.approx(yeom_auc, abs=0.05)


def test_shokri_training_data_excludes_the_target_fold(case):
    *_, bank = case
    # Encode (model, example) in the posterior features to see where training pairs come from.
    posteriors = np.zeros_like(bank.posteriors)
    posteriors[..., 0] = np.arange(bank.num_models)[:, None]
    posteriors[..., 1] = np.arange(bank.num_examples)[None, :]
    tagged = attacks.SignalBank(keep=bank.keep, posteriors=posteriors, labels=bank.labels)
    use = shadow_sets.equalized_shadow_mask(bank.keep, [2, 3], seed=0)
    cols = np.flatnonzero(bank.labels == 1)
    feats, y = shokri_lib._training_set(tagged, use, cols, 4000, np.random.default_rng(0), 1, 0)
    models, examples = feats[:, 0].astype(int), feats[:, 1].astype(int)
    assert not np.isin(models, [2, 3]).any() and use[models, examples].all()
    assert (bank.keep[models, examples] == (y == 1)).all()
    assert y.sum() == 2000 and len(set(models)) > 10
    # Every example offers 8 - 2 IN and 8 - 2 OUT pairs whatever models 2 and 3 did.
    assert ((use & bank.keep).sum(0) == 6).all() and ((use & ~bank.keep).sum(0) == 6).all()


# ---------------------------------------------------------------- known orderings


def test_calibrated_attacks_beat_global_ones_when_difficulty_varies(case):
    logits, labels, keep, _ = case
    results, _ = attacks.evaluate_logits(
        logits,
        labels,
        keep,
        [n for n in attacks.ATTACKS if n != "shokri"],
        num_targets=4,
    )
    auc = {name: r["auc"] for name, r in results.items()}
    for calibrated in ("lira_online", "lira_offline", "sablayrolles", "reference", "rmia_online"):
        for uncalibrated in ("yeom", "global_threshold", "song"):
            assert auc[calibrated] > auc[uncalibrated] + 0.08, (calibrated, uncalibrated, auc)


# ---------------------------------------------------------------- evaluation


def test_evaluate_schema_intervals_and_operating_points(case):
    logits, labels, keep, bank = case
    results, curves = attacks.evaluate_signals(
        bank,
        "all",
        num_targets=4,
        num_bootstrap=60,
        seed=1,
        attack_options={"shokri": _SHOKRI},
    )
    assert list(results) == list(attacks.ATTACKS) == list(curves)
    for name, res in results.items():
        assert res["num_targets"] == 4 and res["num_examples"] == labels.size
        assert res["num_positives"] == keep[:4].sum()
        ci = res["ci"]
        assert ci["num_bootstrap"] == 60 and ci["level"] == 0.95
        assert ci["auc"][0] <= res["auc"] <= ci["auc"][1], name
        assert ci["balanced_accuracy"][0] <= res["balanced_accuracy"] <= ci["balanced_accuracy"][1]
        assert set(ci["tpr_at_fpr"]) == set(res["tpr_at_fpr"])
        assert metrics.auc(*curves[name]) == pytest.approx(res["auc"])
    for name in ("yeom", "sablayrolles", "song", "shokri"):
        op = results[name]["operating_point"]
        assert 0 <= op["fpr"] <= 1 and op["ci"]["tpr"][0] <= op["tpr"] <= op["ci"]["tpr"][1]
    assert "operating_point" not in results["lira_online"]
    assert results["yeom"]["details"]["mean_train_loss"] > 0
    # Yeom's rule "loss <= mean training loss", checked directly.
    tau = attacks.yeom_attack(bank, np.arange(4)).threshold
    decisions = (-bank.loss[:4] >= tau).ravel()
    assert results["yeom"]["operating_point"]["tpr"] == pytest.approx(
        decisions[keep[:4].ravel()].mean()
    )


def test_bootstrap_intervals_shrink_with_more_examples():
    widths = []
    for n in (300, 3000):
        logits, labels, keep = _logits_case(m=8, n=n, a=1, seed=1)
        bank = attacks.signal_bank_from_logits(logits, labels, keep, signal_names=["phi"])
        results, _ = attacks.evaluate_signals(bank, ["lira_online"], 2, num_bootstrap=100)
        lo, hi = results["lira_online"]["ci"]["auc"]
        widths.append(hi - lo)
    assert widths[1] < 0.5 * widths[0]


def test_group_metrics_equal_metrics_on_the_subset(case):
    _, labels, keep, bank = case
    groups = (np.arange(labels.size) % 3 == 0).astype(int)
    results, _ = attacks.evaluate_signals(
        bank,
        ["lira_online", "yeom"],
        3,
        groups=groups,
        group_names=["over", "under"],
        num_bootstrap=20,
    )
    for name in ("lira_online", "yeom"):
        res = results[name]
        assert list(res["groups"]) == ["all", "over", "under"]
        assert res["groups"]["all"]["auc"] == res["auc"]
        output = attacks.ATTACKS[name].fn(bank, np.arange(3))
        for g, group in enumerate(["over", "under"]):
            mask = groups == g
            sub = metrics.summarize(output.scores[:, mask].ravel(), keep[:3][:, mask].ravel())
            got = res["groups"][group]
            assert got["num_examples"] == mask.sum()
            for key in ("auc", "balanced_accuracy", "tpr_at_fpr", "num_positives"):
                assert got[key] == sub[key]
            assert got["ci"]["auc"][0] <= got["auc"] <= got["ci"]["auc"][1]
    op = results["yeom"]["groups"]["under"]["operating_point"]
    assert set(op) == {"tpr", "fpr", "balanced_accuracy", "ci"}


def test_per_target_groups_select_each_targets_own_pairs(case):
    _, labels, keep, bank = case
    rng = np.random.default_rng(1)
    groups = rng.integers(0, 2, size=(3, labels.size))  # a different split per target
    results, _ = attacks.evaluate_signals(
        bank, ["sablayrolles"], 3, groups=groups, group_names=["a", "b"], num_bootstrap=10
    )
    scores = attacks.sablayrolles_attack(bank, np.arange(3)).scores
    for g, name in enumerate(["a", "b"]):
        mask = groups == g
        sub = metrics.summarize(scores[mask], keep[:3][mask])
        got = results["sablayrolles"]["groups"][name]
        assert got["auc"] == sub["auc"] and got["num_positives"] == sub["num_positives"]
        assert got["num_examples"] == pytest.approx(mask.sum() / 3)
        assert got["operating_point"]["tpr"] == pytest.approx((scores[mask & keep[:3]] >= 0).mean())
    with pytest.raises(ValueError, match=r"\[T, N\]=\(3, 600\)"):
        attacks.evaluate_signals(bank, ["yeom"], 3, groups=groups[:2])


def test_group_validation(case):
    _, labels, _, bank = case
    groups = np.zeros(labels.size, int)
    with pytest.raises(ValueError, match="group_names were given but groups is None"):
        attacks.evaluate_signals(bank, ["yeom"], 1, group_names=["a"])
    with pytest.raises(ValueError, match=r"id\(s\) \[2\] that have no name"):
        attacks.evaluate_signals(
            bank, ["yeom"], 1, groups=groups + 2 * (labels == 0), group_names=["a"]
        )
    with pytest.raises(ValueError, match="groups must be an int array"):
        attacks.evaluate_signals(bank, ["yeom"], 1, groups=groups[:-1])
    results, _ = attacks.evaluate_signals(
        bank, ["yeom"], 1, groups=groups, group_names={0: "all_examples", 5: "canary"}
    )
    assert results["yeom"]["groups"]["canary"]["undefined"] is True
    assert results["yeom"]["groups"]["all_examples"]["auc"] == results["yeom"]["auc"]
    default, _ = attacks.evaluate_signals(bank, ["yeom"], 1, groups=groups)
    assert list(default["yeom"]["groups"]) == ["all", "group_0"]
    with pytest.raises(ValueError, match="reserved"):
        attacks.evaluate_signals(bank, ["yeom"], 1, groups=groups, group_names=["all"])


def test_too_few_shadows_are_marked_undefined():
    rng = np.random.default_rng(0)
    m, n, c = 2, 50, 3
    keep = np.zeros((m, n), bool)
    keep[0, ::2], keep[1, 1::2] = True, True
    labels = rng.integers(0, c, n)
    logits = rng.normal(size=(m, n, 1, c))
    results, curves = attacks.evaluate_logits(
        logits, labels, keep, "all", 1, attack_options={"shokri": _SHOKRI | {"num_folds": 1}}
    )
    # One shadow model: each example is IN or OUT for it, never both, so equal-size IN and
    # OUT sets are empty (the shadow is dropped to equalise).
    for name in ("lira_online", "lira_offline", "sablayrolles", "reference", "rmia_offline"):
        assert results[name]["undefined"] is True, name
        assert "shadow" in results[name]["reason"] or "reference" in results[name]["reason"]
        assert name not in curves
    for name in ("rmia_online", "song", "shokri"):
        assert results[name]["undefined"] is True, name
    for name in ("global_threshold", "yeom"):
        assert "auc" in results[name], name
    # Four models: 1 IN + 2 OUT shadows (or 2 + 1) per example; per-example σ undefined.
    keep4 = np.r_[keep, keep]
    logits4 = np.r_[logits, logits + 0.1]
    four, curves4 = attacks.evaluate_logits(
        logits4, labels, keep4, [n for n in attacks.ATTACKS if n.startswith("lira")], 4
    )
    for name in ("lira_online", "lira_offline"):
        assert "a single OUT shadow model" in four[name]["reason"]
    for name in ("lira_online_fixed_variance", "lira_offline_fixed_variance"):
        assert 0.0 <= four[name]["auc"] <= 1.0 and name in curves4
    with pytest.raises(ValueError, match="Every requested attack is undefined"):
        attacks.evaluate_logits(logits, labels, keep, ["lira_online", "reference"], 1)


def test_names_options_and_targets_validation(case):
    *_, bank = case
    phi_only = attacks.SignalBank(keep=bank.keep, phi=bank.phi)
    assert "song" not in attacks.resolve_attacks("all", phi_only.available)
    with pytest.raises(ValueError, match="needs"):
        attacks.evaluate_signals(phi_only, ["song"], 1)
    with pytest.raises(ValueError, match="not being run"):
        attacks.evaluate_signals(bank, ["yeom"], 1, attack_options={"rmia_online": {}})
    with pytest.raises(TypeError):
        attacks.evaluate_signals(bank, ["yeom"], 1, attack_options={"yeom": {"bogus": 1}})
    with pytest.raises(ValueError, match="num_targets"):
        attacks.evaluate_signals(bank, ["yeom"], bank.num_models + 1)
    options, _ = attacks.evaluate_signals(
        bank, ["rmia_offline"], 2, attack_options={"rmia_offline": {"a": 1.0, "gamma": 1.0}}
    )
    direct = attacks.rmia_attack(bank, [0, 1], online=False, a=1.0, gamma=1.0).scores
    assert (
        options["rmia_offline"]["auc"]
        == metrics.summarize(direct.ravel(), bank.keep[:2].ravel())["auc"]
    )
    assert attacks.needed_signals("all") == {"phi", "loss", "p_y", "mentr", "posteriors"}
    assert attacks.needed_signals(["yeom"]) == {"loss"}

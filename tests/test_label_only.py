"""Label-only attacks: the gap formula, labels-only inputs, equal shadow sets, null
calibration, each scorer against an explicit recomputation, and HopSkipJump against the
analytic distance of a linear model."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from lira_jax import attacks, metrics
from lira_jax.attacks import label_only, shadow_sets
from lira_jax.attacks.label_only.augmentation import _fold_pattern_counts, _patterns
from lira_jax.data.membership import keep_mask

LABEL_ONLY = [n for n in attacks.ATTACKS if n.startswith("label_only_")]


def _logits(num_models, num_examples, *, num_queries=3, num_classes=10, effect=0.0, seed=0):
    """Logits with a shared per-example margin and class offsets, per-model noise, and a
    membership effect `effect` added to the label's logit of members (0: the null)."""
    rng = np.random.default_rng(seed)
    keep = keep_mask(seed, num_models, num_examples, 0.5)
    labels = rng.integers(0, num_classes, num_examples)
    margin = rng.normal(1.0, 2.0, num_examples)
    shared = rng.normal(size=(num_examples, num_queries, num_classes))
    z = shared[None] + rng.normal(size=(num_models, num_examples, num_queries, num_classes))
    onehot = np.eye(num_classes)[labels][None, :, None]
    z = z + onehot * (margin[None, :, None, None] + effect * keep[:, :, None, None])
    return z.astype(np.float32), labels, keep


def test_gap_balanced_accuracy_is_half_plus_half_the_accuracy_gap():
    logits, labels, keep = _logits(6, 400, effect=1.0)
    results, _ = attacks.evaluate_logits(logits, labels, keep, "label_only_gap", num_targets=6)
    correct = logits[:, :, 0].argmax(-1) == labels  # independent of the attack's code
    acc_in, acc_out = correct[keep].mean(), correct[~keep].mean()
    assert acc_in > acc_out + 0.05
    op = results["label_only_gap"]["operating_point"]
    assert op["balanced_accuracy"] == pytest.approx(0.5 + 0.5 * (acc_in - acc_out), abs=1e-12)
    # With one interior ROC point, the best balanced accuracy over thresholds is the same.
    assert results["label_only_gap"]["balanced_accuracy"] == pytest.approx(op["balanced_accuracy"])


def test_label_only_scores_see_only_the_argmax():
    logits, labels, keep = _logits(8, 300, effect=1.0)
    rng = np.random.default_rng(1)
    # Positive rescaling per (model, example, query) row plus per-row constants: every
    # argmax unchanged, every score-based signal changed.
    scale = rng.uniform(0.2, 5.0, logits.shape[:3] + (1,))
    shift = rng.normal(0, 10, logits.shape[:3] + (1,))
    other = (logits * scale + shift).astype(np.float32)
    assert np.array_equal(other.argmax(-1), logits.argmax(-1))
    banks = [attacks.signal_bank_from_logits(z, labels, keep) for z in (logits, other)]
    assert not np.allclose(banks[0].phi, banks[1].phi)
    targets = np.arange(8)
    for name in LABEL_ONLY:
        a, b = (attacks.ATTACKS[name].fn(bank, targets, seed=3).scores for bank in banks)
        np.testing.assert_array_equal(a, b, err_msg=name)
    losses = rng.normal(size=(8, 300))
    a, b = (label_only.transfer_attack(bank, targets, shadow_losses=losses) for bank in banks)
    np.testing.assert_array_equal(a.scores, b.scores)


@pytest.mark.parametrize("balanced", [True, False])
def test_augmentation_lira_and_count_match_an_explicit_recomputation(balanced):
    logits, labels, keep = _logits(7 if balanced else 12, 150, num_queries=4, effect=1.0, seed=5)
    if not balanced:  # every example IN for 2..10 of the 12 models
        keep = np.random.default_rng(0).random(keep.shape) < 0.5
        keep[:2], keep[2:4] = True, False
        logits = logits + 2.0 * keep[:, :, None, None] * np.eye(10)[labels][None, :, None]
    bank = label_only.label_bank_from_logits(logits, labels, keep)
    correct = logits.argmax(-1) == labels[None, :, None]
    targets = np.array([0, 3, 6])
    alpha, beta = 0.5, 2.0
    lira = label_only.augmentation_lira_attack(bank, targets, seed=1, prior=(alpha, beta))
    count = label_only.augmentation_count_attack(bank, targets, seed=1)
    for t in targets:
        use = shadow_sets.target_shadow_mask(keep, t, seed=1)
        want = np.zeros(150)
        for n in range(150):
            shadow_in, shadow_out = use[:, n] & keep[:, n], use[:, n] & ~keep[:, n]
            p_in = (correct[shadow_in, n].sum(0) + alpha) / (shadow_in.sum() + alpha + beta)
            p_out = (correct[shadow_out, n].sum(0) + alpha) / (shadow_out.sum() + alpha + beta)
            c = correct[t, n]
            want[n] = np.sum(np.where(c, np.log(p_in / p_out), np.log((1 - p_in) / (1 - p_out))))
        i = list(targets).index(t)
        np.testing.assert_allclose(lira.scores[i], want, rtol=1e-10, atol=1e-12)
        # Count threshold: the best "count >= k" on the shadow pairs, found by brute force.
        counts = correct.sum(2)
        pairs_in, pairs_out = counts[use & keep], counts[use & ~keep]
        gains = [np.mean(pairs_in >= k) - np.mean(pairs_out >= k) for k in range(5)]
        assert count.threshold[i, 0] == int(np.argmax(gains))
        np.testing.assert_array_equal(count.scores[i], counts[t])


def test_attack_model_trains_on_exactly_the_shadow_pairs_and_separates_them():
    logits, labels, keep = _logits(6, 200, num_queries=5, effect=1.0, seed=7)
    bank = label_only.label_bank_from_logits(logits, labels, keep)
    correct = bank.correct
    ids, patterns = _patterns(correct)
    np.testing.assert_array_equal(patterns[ids], correct)  # patterns encode the vectors
    folds = [np.array([1]), np.array([2, 4])]
    c_in, c_out = _fold_pattern_counts(ids, keep, folds, 0, len(patterns))
    for f, fold in enumerate(folds):
        use = shadow_sets.equalized_shadow_mask(keep, fold, seed=0)
        assert not use[fold].any()
        want_in, want_out = np.zeros(len(patterns), int), np.zeros(len(patterns), int)
        for n in range(200):  # pair by pair
            for m in range(6):
                if use[m, n]:
                    (want_in if keep[m, n] else want_out)[ids[m, n]] += 1
        np.testing.assert_array_equal(c_in[f], want_in)
        np.testing.assert_array_equal(c_out[f], want_out)
        assert c_in[f].sum() == 200 * (keep.sum(0).min() - len(fold))
    # A vector that reveals membership exactly (members always correct on every query,
    # non-members never on the last): the learned attack ranks perfectly.
    predicted = np.where(keep[:, :, None], labels[None, :, None], bank.predicted)
    predicted[:, :, -1] = np.where(keep, labels, (labels + 1) % 10)
    sharp = label_only.LabelBank(keep, predicted, labels)
    for fold_size in (1, 2):
        out = label_only.augmentation_model_attack(sharp, np.arange(6), seed=0, fold_size=fold_size)
        assert out.extras["num_folds"] == 6 // fold_size
        assert metrics.auc(*metrics.roc_curve(out.scores.ravel(), keep.ravel())) == 1.0


def _clustered_auc_se(scores, truth, units):
    """AUC and its DeLong standard error with the structural components summed per unit
    (the examples): the M scores of one example are correlated."""
    pos, neg = truth, ~truth
    p, q = int(pos.sum()), int(neg.sum())
    ranks = scipy.stats.rankdata(scores)
    v10 = (ranks[pos] - scipy.stats.rankdata(scores[pos])) / q
    v01 = (p - (ranks[neg] - scipy.stats.rankdata(scores[neg]))) / p
    auc = v10.mean()
    k = int(units.max()) + 1
    d10 = np.bincount(units[pos], v10 - auc, minlength=k)
    d01 = np.bincount(units[neg], v01 - auc, minlength=k)
    f = k / (k - 1)
    var = f * (np.sum(d10**2) / p**2 + np.sum(d01**2) / q**2 + 2 * np.sum(d10 * d01) / (p * q))
    return auc, np.sqrt(var)


@pytest.mark.parametrize("num_models", [8, 16, 64])
def test_null_calibration_of_every_label_only_attack(num_models):
    """Membership-independent labels, distances and shadow losses: AUC 0.5 within 4 SE
    (mean of 3 seeds), in the leave-one-model-out protocol with every model a target."""
    n = 1500
    targets = np.arange(num_models)
    per_attack = {}
    for seed in range(3):
        logits, labels, keep = _logits(num_models, n, seed=seed)
        bank = label_only.label_bank_from_logits(logits, labels, keep)
        rng = np.random.default_rng(seed)
        shared = rng.exponential(1.0, n)
        dist = label_only.BoundaryDistances(
            targets,
            shared[None] * rng.lognormal(0, 0.3, (num_models, n)),
            np.ones((num_models, n), np.int64),
            np.zeros((num_models, n), bool),
        )
        losses = shared[None] + rng.exponential(1.0, (num_models, n))
        outputs = {name: attacks.ATTACKS[name].fn(bank, targets, seed=seed) for name in LABEL_ONLY}
        outputs["boundary"] = label_only.boundary_attack(bank, targets, distances=dist, seed=seed)
        outputs["transfer"] = label_only.transfer_attack(bank, targets, shadow_losses=losses)
        units = np.tile(np.arange(n), num_models)
        for name, out in outputs.items():
            per_attack.setdefault(name, []).append(
                _clustered_auc_se(out.scores.ravel(), keep.ravel(), units)
            )
    failures = []
    for name, values in per_attack.items():
        auc = np.mean([a for a, _ in values])
        se = np.sqrt(np.sum([s**2 for _, s in values])) / len(values)
        assert 0 < se < 0.03, (name, se)
        if abs(auc - 0.5) > 4 * se:
            failures.append(f"{name}: AUC {auc:.4f} outside 0.5 ± {4 * se:.4f}")
    assert not failures, f"M={num_models}: " + "; ".join(failures)


def test_boundary_thresholds_shadow_and_random():
    rng = np.random.default_rng(0)
    keep = keep_mask(0, 5, 400, 0.5)
    # Members sit farther from the boundary: distance 1 + member + noise.
    d = 1.0 + keep + 0.3 * rng.normal(size=keep.shape)
    dist = label_only.BoundaryDistances(np.arange(5), d, np.full(keep.shape, 7), keep & False)
    rand = label_only.BoundaryDistances(
        np.arange(5),
        np.tile(np.linspace(0, 2, 101), (5, 1)),
        np.ones((5, 101), int),
        np.zeros((5, 101), bool),
    )
    bank = label_only.LabelBank(keep, np.zeros(keep.shape + (1,), int), np.zeros(400, int))
    out = label_only.boundary_attack(bank, [0, 2], distances=dist, random_distances=rand, seed=0)
    np.testing.assert_array_equal(out.scores, d[[0, 2]])
    assert out.extras["queries_mean"] == 7 and out.extras["random_threshold_mean"] == pytest.approx(
        1.0
    )
    # The shadow threshold separates 1 from 2 (between the two groups' means).
    assert np.all((out.threshold > 1.2) & (out.threshold < 1.8))
    unsup = label_only.boundary_attack(
        bank, [0], distances=dist, random_distances=rand, threshold="random", percentile=75
    )
    assert unsup.threshold[0, 0] == pytest.approx(1.5)
    with pytest.raises(attacks.AttackUndefined, match="--save_params"):
        label_only.boundary_attack(bank, [0])
    with pytest.raises(attacks.AttackUndefined, match="random inputs"):
        label_only.boundary_attack(bank, [0], distances=dist, threshold="random")


# -- HopSkipJump on linear models ------------------------------------------------------------


class _Linear(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(2)(x.reshape(x.shape[0], -1))


def _logistic_models(num_models, x, labels):
    """Logistic regressions (sklearn) on bootstrap samples, as stacked 2-logit Dense params."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    flat = x.reshape(len(x), -1)
    ws, bs = [], []
    for _ in range(num_models):
        idx = rng.integers(0, len(x), len(x))
        fit = LogisticRegression(C=0.5).fit(flat[idx], labels[idx])
        ws.append(fit.coef_[0])
        bs.append(fit.intercept_[0])
    w, b = np.array(ws), np.array(bs)
    kernel = np.stack([-w / 2, w / 2], axis=2).astype(np.float32)  # [B, d, 2]
    bias = np.stack([-b / 2, b / 2], axis=1).astype(np.float32)
    return {"params": {"Dense_0": {"kernel": jnp.asarray(kernel), "bias": jnp.asarray(bias)}}}, w, b


# One compiled search serves every HopSkipJump test: same model, shapes and batch sizes
# (budgets are traced arguments).
_SHAPE, _CHUNK, _EVAL_BATCH = (8, 8, 1), 16, 50


def _config(**budget):
    return label_only.HSJConfig(example_chunk=_CHUNK, eval_batch=_EVAL_BATCH, **budget)


def test_hopskipjump_finds_the_linear_boundary_within_five_percent():
    rng = np.random.default_rng(1)
    n = 40  # digits-sized inputs, d = 64; three chunks, the last one padded
    x = rng.normal(size=(n,) + _SHAPE).astype(np.float32)
    w_true = rng.normal(size=64)
    labels = (x.reshape(n, -1) @ w_true + rng.normal(size=n) > 0).astype(np.int32)
    params, w, b = _logistic_models(2, x, labels)
    config = _config(iterations=20, max_evals=1000)
    # The box is wide enough that the nearest boundary point lies inside it.
    res = label_only.hsj_distances(
        _Linear(), params, x, labels, clip_min=-12.0, clip_max=12.0, config=config, seed=0
    )
    flat = x.reshape(n, -1)
    for m in range(2):
        margin = flat @ w[m] + b[m]
        analytic = np.abs(margin) / np.linalg.norm(w[m])
        correct = (margin > 0) == labels.astype(bool)
        assert 0 < (~correct).sum() and correct.sum() > n // 2
        np.testing.assert_array_equal(res.distances[m, ~correct], 0.0)
        np.testing.assert_array_equal(res.queries[m, ~correct], 1)
        ratio = res.distances[m, correct] / analytic[correct]
        # The point found is adversarial, so never nearer than the boundary (float32 slack).
        assert ratio.min() >= 1 - 1e-4 and ratio.max() <= 1.05, (ratio.min(), ratio.max())
    assert res.queries.max() <= config.queries_per_example(64)
    assert not res.init_failed.any()


def test_hopskipjump_reads_only_labels_and_random_inputs_use_the_models_own_label():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(12,) + _SHAPE).astype(np.float32)
    labels = rng.integers(0, 2, 12).astype(np.int32)
    params, _, _ = _logistic_models(2, x, labels)
    # Scaling the logits by 7 and adding the same constant to both classes keeps every
    # argmax: the search (same seed) must be identical.
    scaled = jax.tree.map(lambda p: p * 7.0, params)
    scaled["params"]["Dense_0"]["bias"] = scaled["params"]["Dense_0"]["bias"] + 3.0
    kwargs = dict(clip_min=-5.0, clip_max=5.0, config=_config(iterations=3, max_evals=100), seed=4)
    a = label_only.hsj_distances(_Linear(), params, x, labels, **kwargs)
    b = label_only.hsj_distances(_Linear(), scaled, x, labels, **kwargs)
    np.testing.assert_array_equal(a.distances, b.distances)
    np.testing.assert_array_equal(a.queries, b.queries)
    assert np.all((a.queries > 1) | (a.distances == 0)) and a.queries.max() > 50
    rand = label_only.random_inputs(10, _SHAPE, -5.0, 5.0, seed=0)
    assert rand.min() >= -5 and rand.max() <= 5
    r = label_only.hsj_distances(_Linear(), params, rand, None, **kwargs)
    assert np.all(r.distances > 0) and np.all(r.queries > 1)


def test_hopskipjump_rejects_bad_input():
    x = np.zeros((3, 2, 2, 1), np.float32)
    params, _, _ = _logistic_models(
        1, np.random.default_rng(0).normal(size=(20, 2, 2, 1)), np.arange(20) % 2
    )
    with pytest.raises(ValueError, match="clip_max"):
        label_only.hsj_distances(_Linear(), params, x, np.zeros(3, int), clip_min=1.0, clip_max=0.0)
    with pytest.raises(ValueError, match="iterations"):
        label_only.HSJConfig(iterations=-1).validate()
    with pytest.raises(ValueError, match=r"labels must be \[N\]"):
        label_only.hsj_distances(_Linear(), params, x, np.zeros(4, int), clip_min=0.0, clip_max=1.0)


def test_transfer_shadows_learn_their_own_targets_labels():
    """Two targets in one block: one labels the auxiliary set truthfully, one shifts every
    label by one. Each shadow must imitate its own target."""
    from lira_jax.data import load_dataset
    from lira_jax.train import TrainConfig

    ds = load_dataset("digits", None, 200)
    config = TrainConfig(
        arch="cnn16", num_classes=10, epochs=6, batch_size=32, learning_rate=0.05, warmup_epochs=1
    )
    aux_labels = np.stack([ds.y_test, (ds.y_test + 1) % 10])
    losses = label_only.transfer_shadow_losses(
        config, ds.x_test, aux_labels, ds.x_train, ds.y_train, seed=0
    )
    assert losses.shape == (2, 200)
    # Shadow 0 learned the true labels, shadow 1 the shifted ones: on (x, y) the first is
    # confident and right, the second confidently wrong.
    assert np.median(losses[0]) < 1.0 < 3.0 < np.median(losses[1]), np.median(losses, axis=1)
    # Scoring: the target's disagreement puts a candidate below every agreeing one.
    keep = keep_mask(0, 2, 200, 0.5)
    predicted = np.stack([ds.y_train, (ds.y_train + 1) % 10])[:, :, None]
    bank = label_only.LabelBank(keep, predicted, ds.y_train)
    out = label_only.transfer_attack(bank, [0, 1], shadow_losses=losses)
    np.testing.assert_allclose(out.scores[0], -losses[0])
    assert np.all(out.scores[1] < out.scores[0].min()) and out.extras["agreement"] == 0.5
    with pytest.raises(ValueError, match=r"aux_labels has shape"):
        label_only.transfer_shadow_losses(config, ds.x_test, ds.y_test, ds.x_train, ds.y_train)

"""Tests for per-model labels and binary tasks: canaries, canary flips, randomized response,
`all`/`pair`/`parity` tasks, the tabular breast_cancer dataset and the flat-input models."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from lira_jax.data import (
    apply_task,
    canary_mask,
    check_tabular,
    keep_mask,
    label_noise_enabled,
    load_dataset,
    model_labels,
    private_labels,
    query_set,
    randomized_response,
    rr_keep_probability,
    task_labels,
    task_mapping,
)
from lira_jax.models import get_model

# -- canaries and randomized response --------------------------------------------------------


def test_canary_mask_is_a_seeded_set_of_k():
    c = canary_mask(3, 1000, 40)
    assert c.dtype == bool and c.sum() == 40
    np.testing.assert_array_equal(c, canary_mask(3, 1000, 40))
    assert not np.array_equal(c, canary_mask(4, 1000, 40))
    assert canary_mask(3, 10, 0).sum() == 0 and canary_mask(3, 10, 10).all()
    # Independent of the keep mask's stream (both from the same seed).
    keep = keep_mask(3, 2, 1000)
    assert abs(np.mean(keep[0][c]) - 0.5) < 0.3
    with pytest.raises(ValueError, match="num_canaries=11"):
        canary_mask(0, 10, 11)


@pytest.mark.parametrize("num_classes", [2, 5])
def test_canary_flip_rate_is_one_half_and_other_class_is_uniform(num_classes):
    n, models = 4000, np.arange(6)
    labels = np.random.default_rng(0).integers(0, num_classes, n)
    canary = canary_mask(1, n, 1500)
    rows = private_labels(1, labels, canary, num_classes, models)
    assert rows.shape == (6, n) and rows.dtype == np.int32
    # Non-canaries are never touched.
    np.testing.assert_array_equal(rows[:, ~canary], np.broadcast_to(labels[~canary], (6, n - 1500)))
    flipped = rows[:, canary] != labels[canary]
    # Binomial test of the flip rate 1/2 over 6 x 1500 draws (fixed seed).
    assert stats.binomtest(int(flipped.sum()), flipped.size, 0.5).pvalue > 1e-3
    # Each model flips independently: the flip patterns of two models agree about half the time.
    agree = (flipped[0] == flipped[1]).mean()
    assert abs(agree - 0.5) < 0.06
    if num_classes > 2:  # the new class is uniform over the C - 1 others
        shift = (rows[:, canary] - labels[canary]) % num_classes
        counts = np.bincount(shift[flipped], minlength=num_classes)[1:]
        assert stats.chisquare(counts).pvalue > 1e-3


@pytest.mark.parametrize("num_classes,epsilon", [(2, 0.5), (2, 2.0), (10, 1.0), (10, 3.0)])
def test_randomized_response_keeps_with_probability_e_eps_over_e_eps_plus_c_minus_1(
    num_classes, epsilon
):
    n = 5000
    labels = np.random.default_rng(1).integers(0, num_classes, (4, n))
    out = randomized_response(9, labels, num_classes, epsilon, np.arange(10, 14))
    kept = out == labels
    p = np.exp(epsilon) / (np.exp(epsilon) + num_classes - 1)
    assert rr_keep_probability(epsilon, num_classes) == pytest.approx(p, rel=1e-12)
    assert stats.binomtest(int(kept.sum()), kept.size, p).pvalue > 1e-3
    if num_classes > 2:
        shift = ((out - labels) % num_classes)[~kept]
        assert stats.chisquare(np.bincount(shift, minlength=num_classes)[1:]).pvalue > 1e-3
    if num_classes == 2:  # binary: flipped with probability 1 / (1 + e^eps)
        assert p == pytest.approx(1 - 1 / (1 + np.exp(epsilon)))


def test_labels_are_pure_functions_of_seed_and_model_index():
    n = 300
    labels = np.random.default_rng(2).integers(0, 2, n)
    whole = model_labels(5, labels, 2, np.arange(8), num_canaries=50, label_dp_epsilon=1.0)
    # Any block of models, in any order, computes the same rows.
    part = model_labels(5, labels, 2, np.array([6, 2]), num_canaries=50, label_dp_epsilon=1.0)
    np.testing.assert_array_equal(part.private_labels, whole.private_labels[[6, 2]])
    np.testing.assert_array_equal(part.train_labels, whole.train_labels[[6, 2]])
    np.testing.assert_array_equal(part.canary, whole.canary)
    # Randomized response is applied after (to) the canary-flipped labels.
    np.testing.assert_array_equal(
        whole.train_labels,
        randomized_response(5, whole.private_labels, 2, 1.0, np.arange(8)),
    )
    # Off means every row is the true labels.
    off = model_labels(5, labels, 2, np.arange(3))
    assert not off.canary.any()
    np.testing.assert_array_equal(off.train_labels, np.broadcast_to(labels, (3, n)))
    assert not label_noise_enabled(0, None) and not label_noise_enabled(0, float("inf"))
    assert label_noise_enabled(1, None) and label_noise_enabled(0, 8.0)


def test_label_noise_bad_inputs():
    with pytest.raises(ValueError, match="label_dp_epsilon=-1.0"):
        randomized_response(0, np.zeros((1, 3), int), 2, -1.0, [0])
    with pytest.raises(ValueError, match=r"outside \[0, 2\)"):
        private_labels(0, np.array([0, 2]), np.zeros(2, bool), 2, [0])
    with pytest.raises(ValueError, match="one row per model index"):
        randomized_response(0, np.zeros((2, 3), int), 2, 1.0, [0])
    assert rr_keep_probability(0.0, 4) == pytest.approx(0.25)


# -- tasks -----------------------------------------------------------------------------------


def test_task_mappings():
    np.testing.assert_array_equal(task_mapping("all", 4), [0, 1, 2, 3])
    np.testing.assert_array_equal(task_mapping("parity", 5), [0, 1, 0, 1, 0])
    np.testing.assert_array_equal(task_mapping("pair:3,1", 5), [-1, 1, -1, 0, -1])
    selected, new = task_labels(np.array([0, 1, 3, 4, 3]), "pair:3,1", 5)
    np.testing.assert_array_equal(selected, [False, True, True, False, True])
    np.testing.assert_array_equal(new, [1, 0, 0])
    for bad, match in [
        ("pair:1,1", "two different classes"),
        ("pair:1,9", r"\[0, 5\)"),
        ("pair:1", "pair:A,B"),
        ("odd", "Unknown task 'odd'"),
    ]:
        with pytest.raises(ValueError, match=match):
            task_mapping(bad, 5)


def test_apply_task_on_digits():
    ds = load_dataset("digits")
    pair = apply_task(ds, "pair:3,8")
    keep_tr = np.isin(ds.y_train, (3, 8))
    np.testing.assert_array_equal(pair.x_train, ds.x_train[keep_tr])
    np.testing.assert_array_equal(pair.y_train, (ds.y_train[keep_tr] == 8).astype(int))
    np.testing.assert_array_equal(pair.y_test, (ds.y_test[np.isin(ds.y_test, (3, 8))] == 8))
    assert pair.num_classes == 2 and pair.task == "pair:3,8"
    parity = apply_task(ds, "parity")
    np.testing.assert_array_equal(parity.y_train, ds.y_train % 2)
    assert parity.x_train.shape == ds.x_train.shape
    assert apply_task(ds, "all") is ds


# -- breast_cancer and tabular models --------------------------------------------------------


def test_breast_cancer_is_real_tabular_and_standardised_with_train_statistics():
    from sklearn.datasets import load_breast_cancer

    ds = load_dataset("breast_cancer")
    assert ds.tabular and ds.image_shape == (30,) and ds.num_classes == 2
    assert ds.x_train.shape == (456, 30) and ds.x_test.shape == (113, 30)
    assert ds.x_train.dtype == np.float32 and not ds.mirror_ok
    np.testing.assert_allclose(ds.x_train.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(ds.x_train.std(0), 1, atol=1e-3)
    # The split is fixed (seed-independent) and covers the data exactly once.
    raw = load_breast_cancer()
    mean, std = raw.data.mean(0), raw.data.std(0)
    both = np.concatenate([ds.x_train, ds.x_test])
    assert both.shape[0] == 569
    train_raw = raw.data[np.random.default_rng(0).permutation(569)[113:]]
    np.testing.assert_allclose(
        ds.x_train, (train_raw - train_raw.mean(0)) / (train_raw.std(0) + 1e-6), atol=1e-4
    )
    assert not np.allclose(ds.x_train[:5], ((train_raw - mean) / std)[:5], atol=1e-3)
    np.testing.assert_array_equal(np.bincount(np.concatenate([ds.y_train, ds.y_test])), [212, 357])


def test_tabular_data_refuses_shifts_and_mirrors():
    assert query_set("identity", False, tabular=True) == query_set("identity", False)
    with pytest.raises(ValueError, match="--queries=identity"):
        query_set("cross1", False, tabular=True)
    with pytest.raises(ValueError, match="--augment_shift=0"):
        check_tabular("identity", 1, False)
    with pytest.raises(ValueError, match="--noaugment_mirror"):
        check_tabular("identity", 0, True)
    with pytest.raises(ValueError, match="tabular data .* takes mlp or logreg"):
        get_model("cnn32", 2, tabular=True)


@pytest.mark.parametrize("arch", ["mlp", "logreg"])
def test_flat_models_map_feature_vectors_to_logits(arch):
    model = get_model(arch, 2, tabular=True)
    x = jax.random.normal(jax.random.PRNGKey(0), (5, 30))
    params = model.init(jax.random.PRNGKey(1), x)
    out = model.apply(params, x)
    assert out.shape == (5, 2) and np.all(np.isfinite(out))
    if arch == "logreg":  # exactly x @ W + b
        p = params["params"]["Dense_0"]
        np.testing.assert_allclose(out, x @ p["kernel"] + p["bias"], rtol=1e-5, atol=1e-6)
        assert jax.tree.leaves(params)[0].size in (2, 60)


def test_logreg_learns_breast_cancer():
    ds = load_dataset("breast_cancer")
    model = get_model("logreg", 2, tabular=True)
    x, y = jnp.asarray(ds.x_train), jnp.asarray(ds.y_train)
    params = model.init(jax.random.PRNGKey(0), x[:1])

    def loss(p):
        logits = model.apply(p, x)
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(len(y)), y])

    grad = jax.jit(jax.grad(loss))
    for _ in range(200):
        params = jax.tree.map(lambda a, g: a - 0.5 * g, params, grad(params))
    acc = (model.apply(params, ds.x_test).argmax(-1) == ds.y_test).mean()
    assert acc > 0.93  # a linear model separates this data well (published ~95-97 %)

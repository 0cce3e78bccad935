"""Tests for DP-SGD (lira_jax.train.dpsgd) and its path in the engine, and per-model labels:
Poisson sampling rates, per-example clipping, the noise's scale, and DP-SGD with σ = 0 and a
huge C equal to plain SGD on the same sampled batches."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import stats

from lira_jax.data import keep_mask, load_dataset, model_labels
from lira_jax.models import get_model
from lira_jax.train import Engine, TrainConfig, bytes_per_model, dpsgd, steps_per_epoch
from lira_jax.train import engine as engine_lib


@pytest.fixture(scope="module")
def cancer():
    return load_dataset("breast_cancer")


def _flat(tree):
    return np.concatenate([np.ravel(np.asarray(p)) for p in jax.tree.leaves(tree)])


# -- sampling --------------------------------------------------------------------------------


def test_poisson_batch_samples_in_examples_at_rate_q():
    n, q, max_batch = 2000, 0.1, 200
    keep = jnp.asarray(np.random.default_rng(0).random(n) < 0.5)
    sample = jax.jit(jax.vmap(lambda k: dpsgd.poisson_batch(k, keep, q, max_batch)))
    idx, w, truncated = sample(jax.random.split(jax.random.PRNGKey(0), 300))
    counts = np.zeros(n)
    for i, wi in zip(np.asarray(idx), np.asarray(w), strict=True):
        chosen = i[wi > 0]
        assert len(np.unique(chosen)) == len(chosen)  # no example twice in a step
        counts[chosen] += 1
        assert np.all(wi[: len(chosen)] == 1) and np.all(wi[len(chosen) :] == 0)
    keep = np.asarray(keep)
    assert counts[~keep].sum() == 0  # OUT examples are never sampled
    total = int(counts[keep].sum())
    assert stats.binomtest(total, int(keep.sum()) * 300, q).pvalue > 1e-3
    assert int(np.asarray(truncated).sum()) == 0  # 200 slots for ~100 expected


def test_overflow_is_truncated_and_counted():
    keep = jnp.ones(1000, bool)
    key = jax.random.PRNGKey(3)
    idx, w, truncated = dpsgd.poisson_batch(key, keep, 0.1, 50)
    # Independently: the same uniforms, thresholded.
    count = int((jax.random.uniform(key, (1000,)) < 0.1).sum())
    assert count > 50 and int(truncated) == count - 50 and float(w.sum()) == 50


def test_max_batch_size_bounds_the_overflow_probability():
    for b in (8, 32, 128):
        m = dpsgd.max_batch_size(b)
        assert stats.poisson.sf(m, b) <= dpsgd.OVERFLOW_PROBABILITY
        assert stats.poisson.sf(m - 1, b) > dpsgd.OVERFLOW_PROBABILITY  # the smallest such
        # A model's sample, Binomial(n, q) with n q <= b, overflows more rarely still.
        for n in (b + 1, 4 * b, 1000 * b):
            assert stats.binom.sf(m, n, b / n) <= dpsgd.OVERFLOW_PROBABILITY
    assert dpsgd.sampling_probability(8) == 0.125


# -- clipping and noise ----------------------------------------------------------------------


def _per_example_setup(cancer, n=12):
    model = get_model("mlp", 2, tabular=True)
    x, y = jnp.asarray(cancer.x_train[:n]), jnp.asarray(cancer.y_train[:n])
    params = model.init(jax.random.PRNGKey(0), x[:1])

    def loss_one(p, xi, yi):
        logits = model.apply(p, xi[None])[0]
        return optax.softmax_cross_entropy_with_integer_labels(logits, yi), jnp.float32(0)

    return model, params, x, y, loss_one


def test_every_per_example_gradient_is_clipped_to_c(cancer):
    model, params, x, y, loss_one = _per_example_setup(cancer)
    grads = jax.jit(jax.vmap(jax.grad(lambda p, xi, yi: loss_one(p, xi, yi)[0]), (None, 0, 0)))(
        params, x, y
    )
    norms = dpsgd.global_norms(grads)
    c = float(np.median(norms))  # about half are clipped
    clipped, before = jax.jit(dpsgd.clip_per_example)(grads, c)
    after = np.asarray(dpsgd.global_norms(clipped))
    assert np.all(after <= c * (1 + 1e-6))
    big = np.asarray(before) > c
    assert 0 < big.sum() < len(big)
    np.testing.assert_allclose(after[big], c, rtol=1e-5)
    rows = lambda t: np.concatenate(  # noqa: E731
        [np.asarray(g).reshape(len(big), -1) for g in jax.tree.leaves(t)], axis=1
    )
    flat, flat_c = rows(grads), rows(clipped)
    np.testing.assert_array_equal(flat_c[~big], flat[~big])  # within C: untouched
    cos = (flat_c[big] * flat[big]).sum(1) / np.linalg.norm(flat_c[big], axis=1)
    np.testing.assert_allclose(cos / np.linalg.norm(flat[big], axis=1), 1.0, rtol=1e-5)

    # The whole DP gradient (σ = 0) against a per-example loop done independently in numpy.
    w = jnp.asarray((np.arange(len(big)) % 3 != 0).astype(np.float32))
    dp_grad = functools.partial(
        dpsgd.noisy_gradient, loss_one, clip_norm=c, noise_multiplier=0.0, denominator=7.0
    )
    got, _ = jax.jit(dp_grad)(params, x, y, w, jax.random.PRNGKey(1))
    want = np.zeros_like(flat[0], dtype=np.float64)
    grad_one = jax.jit(jax.grad(lambda p, xi, yi: loss_one(p, xi, yi)[0]))
    for i in range(len(big)):
        g = _flat(grad_one(params, x[i], y[i])).astype(np.float64)
        want += float(w[i]) * g * min(1.0, c / np.linalg.norm(g))
    np.testing.assert_allclose(_flat(got), want / 7.0, rtol=1e-4, atol=1e-6)


def test_noise_has_standard_deviation_sigma_c_over_the_denominator(cancer):
    model, params, x, y, loss_one = _per_example_setup(cancer)
    dp_grad = functools.partial(
        dpsgd.noisy_gradient, loss_one, clip_norm=0.5, noise_multiplier=2.0, denominator=4.0
    )
    # All padding (weight 0): only the noise remains.
    grads, _ = jax.jit(dp_grad)(params, x, y, jnp.zeros(x.shape[0]), jax.random.PRNGKey(2))
    noise = _flat(grads)
    assert noise.size > 70_000
    assert np.std(noise) == pytest.approx(2.0 * 0.5 / 4.0, rel=0.02)
    assert abs(np.mean(noise)) < 5 * 0.25 / np.sqrt(noise.size)
    assert stats.normaltest(noise[:5000]).pvalue > 1e-3


# -- the engine's DP path --------------------------------------------------------------------


def _dp_config(**kw):
    base = dict(
        arch="logreg",
        num_classes=2,
        epochs=2,
        batch_size=32,
        learning_rate=0.1,
        warmup_epochs=0.5,
        augment_shift=0,
        seed=4,
        dp_noise_multiplier=0.0,
        dp_clip_norm=1e6,
        dp_delta=1e-5,
    )
    base.update(kw)
    return TrainConfig(**base)


def test_dp_sgd_without_noise_or_clipping_is_plain_sgd_on_the_sampled_batches(cancer):
    n = cancer.x_train.shape[0]
    keep = keep_mask(0, 2, n)
    labels = model_labels(4, cancer.y_train, 2, np.arange(2), num_canaries=60).train_labels
    config = _dp_config()
    steps = steps_per_epoch(keep, config.batch_size)
    engine = Engine(config, cancer.x_train, cancer.y_train, steps, model_chunk=0)
    trained = engine.train(np.arange(2), keep, label_rows=labels)
    # The reference: plain SGD (weighted loss sum / B, one batched gradient, no per-example
    # gradients, no clipping) over the same Poisson samples, one model at a time.
    q, slots = 1.0 / steps, dpsgd.max_batch_size(config.batch_size)
    x_all = jnp.asarray(cancer.x_train)

    def loss(p, idx, w, y_m):
        logits = engine.model.apply(p, x_all[idx])
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, y_m[idx])
        return (ce * w).sum() / config.batch_size

    @jax.jit
    def plain_step(params, opt_state, data_key, keep_row, y_m, epoch, step):
        sample_key, _, _ = dpsgd.step_keys(data_key, epoch, step)
        idx, w, _ = dpsgd.poisson_batch(sample_key, keep_row, q, slots)
        grads = jax.grad(loss)(params, idx, w, y_m)
        updates, opt_state = engine.optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    for m in range(2):
        params, opt_state = jax.tree.map(lambda a: a[0], engine.init(np.array([m])))
        data_key = engine_lib.model_keys(config.seed, np.array([m]), engine_lib._DATA_STREAM)[0]
        for epoch in range(config.epochs):
            for step in range(steps):
                params, opt_state = plain_step(
                    params, opt_state, data_key, keep[m], labels[m], epoch, step
                )
        np.testing.assert_allclose(
            _flat(jax.tree.map(lambda p, m=m: p[m], trained)), _flat(params), rtol=2e-5, atol=1e-6
        )


def test_dp_sgd_with_noise_trains_and_differs_from_noiseless(cancer):
    n = cancer.x_train.shape[0]
    keep = keep_mask(1, 2, n)
    steps = steps_per_epoch(keep, 32)
    seen = []
    noisy = Engine(
        _dp_config(epochs=4, dp_noise_multiplier=1.0, dp_clip_norm=1.0),
        cancer.x_train,
        cancer.y_train,
        steps,
    )
    params = noisy.train(np.arange(2), keep, progress=seen.append)
    assert seen[-1]["dp_truncated"].tolist() == [0, 0]
    logits = jax.vmap(lambda p: noisy.model.apply(p, cancer.x_test))(params)
    acc = (np.asarray(logits).argmax(-1) == cancer.y_test).mean(1)
    assert np.all(acc > 0.85)  # DP-SGD at σ = 1 still learns this near-linear task
    quiet = Engine(
        _dp_config(epochs=4, dp_clip_norm=1.0), cancer.x_train, cancer.y_train, steps
    ).train(np.arange(2), keep)
    assert np.abs(_flat(quiet) - _flat(params)).max() > 1e-3


def test_dp_block_size_estimate_counts_per_example_gradients():
    plain = TrainConfig(arch="mlp", num_classes=2, batch_size=32, augment_shift=0)
    dp = _dp_config(arch="mlp")
    state, work_plain = bytes_per_model(plain, (30,))
    state_dp, work_dp = bytes_per_model(dp, (30,))
    params_bytes = state // 4
    assert state_dp == state
    # At least the per-example gradients and their clipped copies, one per batch slot.
    assert work_dp >= 2 * dpsgd.max_batch_size(32) * params_bytes > work_plain


def test_bad_dp_settings_are_named():
    with pytest.raises(ValueError, match="needs all of"):
        _dp_config(dp_delta=None).validate()
    with pytest.raises(ValueError, match="dp_clip_norm=0.0"):
        _dp_config(dp_clip_norm=0.0).validate()
    with pytest.raises(ValueError, match="dp_delta=2.0"):
        _dp_config(dp_delta=2.0).validate()
    with pytest.raises(ValueError, match="dp_noise_multiplier=-1"):
        _dp_config(dp_noise_multiplier=-1).validate()


# -- per-model labels and tabular data in the engine -----------------------------------------


def test_models_train_on_their_own_label_rows(cancer):
    n = cancer.x_train.shape[0]
    keep = np.ones((2, n), bool)
    keep[:, ::2] = False
    config = TrainConfig(
        arch="logreg", num_classes=2, epochs=4, batch_size=32, augment_shift=0, seed=1
    )
    engine = Engine(config, cancer.x_train, cancer.y_train, steps_per_epoch(keep, 32))
    same = engine.train(np.arange(2), keep, label_rows=np.stack([cancer.y_train] * 2))
    default = engine.train(np.arange(2), keep)
    np.testing.assert_array_equal(_flat(same), _flat(default))  # bit for bit
    inverted = np.stack([cancer.y_train, 1 - cancer.y_train])
    params = engine.train(np.arange(2), keep, label_rows=inverted)
    logits = np.asarray(jax.vmap(lambda p: engine.model.apply(p, cancer.x_test))(params))
    acc = (logits.argmax(-1) == cancer.y_test).mean(1)
    assert acc[0] > 0.9 and acc[1] < 0.1  # model 1 learned the inverted labels
    with pytest.raises(ValueError, match=r"label_rows has shape \(1, 456\)"):
        engine.train(np.arange(2), keep, label_rows=inverted[:1])
    with pytest.raises(ValueError, match=r"num_classes=2"):
        engine.train(np.arange(2), keep, label_rows=inverted + 1)


def test_engine_refuses_augmentation_and_image_models_on_tabular_data(cancer):
    y, x = cancer.y_train, cancer.x_train
    with pytest.raises(ValueError, match="--augment_shift=0"):
        Engine(TrainConfig(arch="mlp", num_classes=2, augment_shift=1), x, y, 4)
    with pytest.raises(ValueError, match="needs images"):
        Engine(TrainConfig(arch="cnn16", num_classes=2, augment_shift=0), x, y, 4)

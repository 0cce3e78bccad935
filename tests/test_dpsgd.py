"""Tests for DP-SGD (lira_jax.train.dpsgd) and its path in the engine, and per-model labels:
Poisson sampling rates, per-example clipping, the noise's scale, and DP-SGD with σ = 0 and a
huge C equal to plain SGD on the same sampled batches."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax_privacy import batch_selection, clipping
from scipy import stats

from lira_jax import failpoints
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


def test_poisson_batch_is_distributed_as_jax_privacy_poisson_sampling():
    """jax-privacy's sampler runs on the host (numpy generator, variable-size batches), so
    the engine keeps its own keyed, fixed-shape one: the same inputs must give the same
    distribution of batches."""
    n, q, slots, iters = 600, 0.1, 34, 4000
    rng = np.random.default_rng(5)
    keep = np.zeros(n, bool)
    keep[rng.choice(n, 300, replace=False)] = True
    in_idx = np.flatnonzero(keep)
    sample = jax.jit(jax.vmap(lambda k: dpsgd.poisson_batch(k, jnp.asarray(keep), q, slots)))
    idx, w, truncated = (np.asarray(a) for a in sample(jax.random.split(jax.random.key(0), iters)))
    ours = w.sum(1).astype(int)
    strategy = batch_selection.CyclicPoissonSampling(
        sampling_prob=q, iterations=iters, truncated_batch_size=slots
    )
    batches = [in_idx[b] for b in strategy.batch_iterator(len(in_idx), rng=1)]
    theirs = np.array([len(b) for b in batches])
    # Batch sizes min(Binomial(300, q), slots) in both: about 13 % of steps truncate here.
    assert 0.05 < (ours == slots).mean() < 0.25 and 0.05 < (theirs == slots).mean() < 0.25
    table = np.stack(
        [np.bincount(ours, minlength=slots + 1), np.bincount(theirs, minlength=slots + 1)]
    )
    table = table[:, table.sum(0) > 0]
    assert stats.chi2_contingency(table).pvalue > 1e-3
    assert np.all(ours[truncated > 0] == slots)  # a truncated step is full
    # Which examples: never an OUT one, and every IN one at the same rate. Truncation drops
    # the highest-index samples here and uniformly chosen ones in jax-privacy, so the rates
    # are compared on untruncated steps only (the engine truncates with probability <= 1e-7).
    full = truncated == 0
    counts = np.zeros(n)
    for i, wi in zip(idx[full], w[full], strict=True):
        counts[i[wi > 0]] += 1
    counts_jp = np.zeros(n)
    for b in batches:
        if len(b) < slots:
            counts_jp[b] += 1
    assert counts[~keep].sum() == 0 and counts_jp[~keep].sum() == 0
    rate, rate_jp = counts[keep] / full.sum(), counts_jp[keep] / (theirs < slots).sum()
    # Conditioned on no truncation the inclusion rate is a bit below q, the same in both.
    assert abs(rate.mean() - rate_jp.mean()) < 0.004
    assert stats.chi2_contingency(np.stack([counts[keep], counts_jp[keep]])).pvalue > 1e-3


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
    rows = lambda t: np.concatenate(  # noqa: E731
        [np.asarray(g).reshape(x.shape[0], -1) for g in jax.tree.leaves(t)], axis=1
    )
    flat = rows(grads)
    norms = np.linalg.norm(flat.astype(np.float64), axis=1)
    c = float(np.median(norms))  # about half are clipped
    big = norms > c
    assert 0 < big.sum() < len(big)
    # One example at a time (one-hot weights, no noise, denominator 1): the DP gradient is
    # that example's clipped gradient. vmapped over the examples, as the engine maps models.
    one_hot = jnp.eye(x.shape[0], dtype=jnp.float32)
    dp_one = lambda w: dpsgd.noisy_gradient(  # noqa: E731
        loss_one,
        params,
        x,
        y,
        w,
        jax.random.PRNGKey(1),
        clip_norm=c,
        noise_multiplier=0.0,
        denominator=1.0,
    )
    clipped, stats = jax.jit(jax.vmap(dp_one))(one_hot)
    flat_c = rows(clipped)
    after = np.linalg.norm(flat_c.astype(np.float64), axis=1)
    assert np.all(after <= c * (1 + 1e-6))
    np.testing.assert_allclose(after[big], c, rtol=1e-5)
    np.testing.assert_allclose(flat_c[~big], flat[~big], rtol=1e-5, atol=1e-6)  # untouched
    cos = (flat_c[big] * flat[big]).sum(1) / (after[big] * norms[big])
    np.testing.assert_allclose(cos, 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(stats["norms"])[0], norms, rtol=1e-5)

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


def test_clipped_sum_equals_jax_privacy_clipped_grad(cancer):
    """The engine sums jax-privacy's per-example `clip_pytree` with a weighted tensordot
    (faster in the engine's epoch); jax-privacy's own `clipped_grad` on the same inputs,
    padding slots marked as padding, gives the same clipped sum, values and norms."""
    model, params, x, y, loss_one = _per_example_setup(cancer)
    w = jnp.asarray((np.arange(x.shape[0]) < 9).astype(np.float32))  # 3 padding slots
    c = 0.3
    ours, stats = jax.jit(
        functools.partial(
            dpsgd.noisy_gradient, loss_one, clip_norm=c, noise_multiplier=0.0, denominator=5.0
        )
    )(params, x, y, w, jax.random.PRNGKey(0))
    theirs_fn = clipping.clipped_grad(
        loss_one,
        has_aux=True,
        l2_clip_norm=c,
        batch_argnums=(1, 2),
        keep_batch_dim=False,
        normalize_by=5.0,
        return_values=True,
        return_grad_norms=True,
    )
    theirs, aux = jax.jit(theirs_fn)(params, x, y, is_padding_example=w == 0)
    np.testing.assert_allclose(_flat(ours), _flat(theirs), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(stats["norms"], aux.grad_norms, rtol=1e-6)
    np.testing.assert_allclose(stats["loss"], (aux.values * w).sum(), rtol=1e-6)
    assert np.abs(_flat(ours)).max() > 1e-3  # not trivially zero


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


def test_dp_sgd_is_a_pure_function_of_the_keys_whatever_the_block_layout(cancer):
    """jax-privacy's clipping and noise inside the per-model function, mapped over models
    (lax.map one at a time, or vmapped), inside shard_map: a model trained in a block equals
    the same model trained alone, bit for bit one at a time, to float rounding vmapped."""
    n = cancer.x_train.shape[0]
    keep = keep_mask(2, 3, n)
    config = _dp_config(epochs=2, dp_noise_multiplier=1.0, dp_clip_norm=1.0)
    steps = steps_per_epoch(keep, config.batch_size)
    make = lambda chunk: Engine(  # noqa: E731
        config, cancer.x_train, cancer.y_train, steps, model_chunk=chunk
    )
    block = make(1).train(np.arange(3), keep)
    alone = make(1).train(np.array([2]), keep[2:])
    np.testing.assert_array_equal(_flat(jax.tree.map(lambda p: p[2:], block)), _flat(alone))
    again = make(1).train(np.arange(3), keep)
    np.testing.assert_array_equal(_flat(block), _flat(again))
    vmapped = make(0).train(np.arange(3), keep)
    np.testing.assert_allclose(_flat(vmapped), _flat(block), rtol=1e-4, atol=1e-6)
    # The noise is there: another seed's models differ by far more than rounding.
    other = Engine(
        dataclasses.replace(config, seed=5), cancer.x_train, cancer.y_train, steps, model_chunk=1
    ).train(np.arange(3), keep)
    assert np.abs(_flat(other) - _flat(block)).max() > 1e-2


def test_planted_noise_off_bug_trains_without_noise(cancer, monkeypatch):
    """The test-only planted bug (`failpoints`): DP-SGD claims σ = 1 but adds no noise."""
    n = cancer.x_train.shape[0]
    keep = keep_mask(2, 2, n)
    steps = steps_per_epoch(keep, 32)
    noisy = _dp_config(dp_noise_multiplier=1.0, dp_clip_norm=1.0)
    quiet = _dp_config(dp_noise_multiplier=0.0, dp_clip_norm=1.0)
    train = lambda c: Engine(c, cancer.x_train, cancer.y_train, steps).train(  # noqa: E731
        np.arange(2), keep
    )
    without = train(quiet)
    monkeypatch.setenv(failpoints.BUG_ENV_VAR, "dp_noise_off")
    planted = train(noisy)
    np.testing.assert_array_equal(_flat(planted), _flat(without))
    monkeypatch.setenv(failpoints.BUG_ENV_VAR, "dp_noise_of")
    with pytest.raises(ValueError, match="must be one of"):
        failpoints.check()
    monkeypatch.delenv(failpoints.BUG_ENV_VAR)
    assert np.abs(_flat(train(noisy)) - _flat(without)).max() > 1e-2


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

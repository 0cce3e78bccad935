"""Tests for lira_jax.train: vmapped training equals training alone, in any block layout;
queries; mixed precision; the automatic block size."""

import dataclasses
import hashlib

import jax
import numpy as np
import pytest

from lira_jax.data import Query, keep_mask, load_dataset, query_set
from lira_jax.train import (
    Engine,
    TrainConfig,
    auto_models_per_step,
    backend_defaults,
    bytes_per_model,
    query_logits,
    steps_per_epoch,
)
from lira_jax.train import engine as engine_lib

N = 96


@pytest.fixture(scope="module")
def setup():
    ds = load_dataset("digits", max_train=N)
    keep = keep_mask(0, 4, N, 0.5)
    config = TrainConfig(
        arch="cnn16",
        num_classes=10,
        epochs=2,
        batch_size=16,
        learning_rate=0.05,
        warmup_epochs=1,
        augment_shift=1,
        seed=7,
        conv_impl="patches",
    )
    engine = Engine(config, ds.x_train, ds.y_train, steps_per_epoch(keep, 16))
    return ds, keep, engine


def _flat(params):
    return np.concatenate([np.ravel(p) for p in jax.tree.leaves(params)])


def test_vmapped_block_equals_each_model_alone(setup):
    ds, keep, engine = setup
    block = engine.train(np.arange(4), keep)
    for m in (0, 3):  # alone, and (by the keys) independent of the other models of a block
        alone = engine.train(np.array([m]), keep[m : m + 1])
        np.testing.assert_allclose(
            _flat(jax.tree.map(lambda p, m=m: p[m], block)), _flat(alone), rtol=1e-4, atol=1e-5
        )
    # ...and training actually moved the models apart (different keys and subsets).
    assert np.abs(_flat(jax.tree.map(lambda p: p[0] - p[1], block))).max() > 1e-2


def test_block_layout_does_not_change_the_models(setup):
    ds, keep, engine = setup
    default = engine.train(np.arange(4), keep)  # on CPU: one model after another (lax.map)
    for chunk in (0, 3):  # a vmap over all 4; lax.map over 2 groups of 2 vmapped models
        other = Engine(engine.config, ds.x_train, ds.y_train, engine.steps, model_chunk=chunk)
        np.testing.assert_allclose(
            _flat(other.train(np.arange(4), keep)), _flat(default), rtol=1e-4, atol=1e-5
        )


def test_bfloat16_compute_keeps_float32_params(setup):
    ds, keep, engine = setup
    config = dataclasses.replace(engine.config, compute_dtype="bfloat16")
    bf16 = Engine(config, ds.x_train, ds.y_train, engine.steps)
    seen = []
    params = bf16.train(np.arange(2), keep[:2], progress=seen.append)
    assert {p.dtype for p in jax.tree.leaves(params)} == {np.dtype(np.float32)}
    assert np.isfinite(seen[-1]["loss"]).all()
    f32 = _flat(engine.train(np.arange(2), keep[:2]))
    diff = np.abs(_flat(params) - f32).max()
    assert 0 < diff < 0.1  # bfloat16 rounding changes the models, a little


def test_auto_models_per_step(setup):
    ds, keep, engine = setup
    config = engine.config
    shape = ds.x_train.shape[1:]
    state, work = bytes_per_model(config, shape)
    assert state == 4 * 4 * sum(p.size for p in jax.tree.leaves(engine.init([0])[0]))
    assert work > state  # activations of a 16-example step outweigh a tiny CNN
    assert auto_models_per_step(config, shape, 5) == 5
    assert auto_models_per_step(config, shape, 1000) == backend_defaults().models_per_device
    # Memory caps the block: room for the working set of one chunk and 7 models' state.
    budget = 4 * work + 7 * state
    assert auto_models_per_step(config, shape, 1000, memory_budget=budget, model_chunk=4) == 7
    assert auto_models_per_step(config, shape, 1000, memory_budget=1) == 1


def test_keep_rows_must_match_the_models(setup):
    ds, keep, engine = setup
    with pytest.raises(ValueError, match=r"keep_rows has shape \(2, 96\).*\[3, 96\]"):
        engine.train(np.arange(3), keep[:2])


def test_out_examples_never_influence_a_model(setup):
    ds, keep, engine = setup
    x_noisy = ds.x_train.copy()
    y_noisy = ds.y_train.copy()
    out = ~keep[0]
    x_noisy[out] = np.random.default_rng(0).normal(size=x_noisy[out].shape)
    y_noisy[out] = (y_noisy[out] + 3) % 10
    noisy = Engine(engine.config, x_noisy, y_noisy, engine.steps)
    np.testing.assert_array_equal(
        _flat(engine.train(np.array([0]), keep[:1])), _flat(noisy.train(np.array([0]), keep[:1]))
    )


def test_training_learns(setup):
    ds, keep, _ = setup
    config = TrainConfig(
        arch="cnn16",
        num_classes=10,
        epochs=20,
        batch_size=16,
        learning_rate=0.1,
        conv_impl="patches",
    )
    engine = Engine(config, ds.x_train, ds.y_train, steps_per_epoch(keep, 16))
    seen = []
    params = engine.train(np.arange(2), keep[:2], progress=seen.append)
    assert [s["epoch"] for s in seen] == list(range(1, 21))
    assert seen[-1]["loss"].mean() < seen[0]["loss"].mean()
    logits = query_logits(engine.model, params, ds.x_train, (Query(False, 0, 0),))
    acc_in = (logits[:, :, 0].argmax(-1) == ds.y_train)[keep[:2]].mean()
    assert acc_in > 0.8


def test_query_logits_match_direct_application(setup):
    ds, keep, engine = setup
    params = engine.init(np.arange(3))[0]
    queries = query_set("cross1", False)
    x = ds.x_train[:50]
    out = query_logits(engine.model, params, x, queries, chunk=16)
    assert out.shape == (3, 50, 5, 10) and out.dtype == np.float32
    for m in range(3):
        p = jax.tree.map(lambda a, m=m: a[m], params)
        np.testing.assert_allclose(out[m, :, 0], engine.model.apply(p, x), atol=1e-5)
        shifted = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)], mode="reflect")
        q = queries[1]
        view = shifted[:, 1 - q.dy : 1 - q.dy + 8, 1 - q.dx : 1 - q.dx + 8]
        np.testing.assert_allclose(out[m, :, 1], engine.model.apply(p, view), atol=1e-5)


def test_bad_config():
    with pytest.raises(ValueError, match="epochs=0"):
        TrainConfig(arch="cnn16", num_classes=10, epochs=0).validate()
    with pytest.raises(ValueError, match="learning_rate"):
        TrainConfig(arch="cnn16", num_classes=10, learning_rate=-1).validate()
    with pytest.raises(ValueError, match="compute_dtype='float16'.*bfloat16"):
        TrainConfig(arch="cnn16", num_classes=10, compute_dtype="float16").validate()


def test_epoch_order_is_a_pure_function_of_seed_model_and_epoch():
    """The data order: own examples only, each once per epoch, reshuffled every epoch, the
    same eagerly, jitted and vmapped over models; pinned by value for seed 0, so a change
    in the PRNG or the recipe (which would change every run's models) fails here first."""
    keep = keep_mask(0, 4, 120)
    keys = engine_lib.model_keys(0, np.arange(4), engine_lib._DATA_STREAM)
    idx, w, _ = engine_lib.epoch_batches(keys[1], keep[1], 3, 2, 32)
    idx, w = np.asarray(idx), np.asarray(w)
    own = idx.reshape(-1)[w.reshape(-1) > 0]
    assert sorted(own.tolist()) == np.flatnonzero(keep[1]).tolist()  # each IN once, no OUT
    digest = hashlib.sha256(idx.astype(np.int32).tobytes()).hexdigest()
    assert digest == "e9fe11fbb47bddab49797a6e9c42bbf9dc4d6d3b16e5ec311a545991a690a4f0"
    jitted = jax.jit(engine_lib.epoch_batches, static_argnums=(3, 4))
    np.testing.assert_array_equal(jitted(keys[1], keep[1], 3, 2, 32)[0], idx)
    mapped = jax.vmap(lambda k, r: engine_lib.epoch_batches(k, r, 3, 2, 32)[0])(keys, keep)
    np.testing.assert_array_equal(mapped[1], idx)
    other = np.asarray(engine_lib.epoch_batches(keys[1], keep[1], 4, 2, 32)[0])
    assert not np.array_equal(other, idx)  # reshuffled each epoch
    assert sorted(other.reshape(-1)[w.reshape(-1) > 0].tolist()) == sorted(own.tolist())

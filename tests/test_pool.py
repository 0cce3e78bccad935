"""Mixture pools end to end: groups in the store, selections inside the random group."""

import numpy as np
import pytest

from experiments import train_shadows
from lira_jax import store as store_lib
from lira_jax.data import datasets, mixtures
from lira_jax.train import pool as pool_lib

TINY = dict(max_train=600, arch="cnn16", num_models=4, epochs=2, batch_size=64)
MIX = dict(ood_dataset="aug", ood_size=100, augmix_severity=3)


@pytest.fixture(scope="module")
def random_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("random")
    config = train_shadows.make_config("digits", mixture="random", **MIX, **TINY)
    store = train_shadows.train_shadows(config, workdir, log=lambda _: None)
    return workdir, store


def test_random_mixture_store_records_groups_and_sources(random_run):
    workdir, store = random_run
    store = store_lib.open_store(workdir / "store", complete=True)
    groups, source = store.groups(), store.source_index()
    assert store.group_names == mixtures.GROUP_NAMES and store.num_examples == 700
    assert (groups[:600] == 0).all() and (groups[600:] == 1).all()
    np.testing.assert_array_equal(source[:600], np.arange(600))
    # The group: class-balanced, drawn from base examples outside the pool (600..1499),
    # labels consistent with their source.
    raw = datasets.load_raw("digits")
    ood = source[600:]
    assert ((ood >= 0) & (ood < 900)).all()
    np.testing.assert_array_equal(store.labels()[600:], raw.y_train[600 + ood])
    assert np.bincount(store.labels()[600:], minlength=10).tolist() == [10] * 10
    np.testing.assert_array_equal(store.labels()[:600], raw.y_train[:600])
    # A pool is standardised once, after mixing.
    pool = pool_lib.load_pool(store.config)
    assert abs(pool.dataset.x_train.mean()) < 1e-4 and abs(pool.dataset.x_train.std() - 1) < 1e-3
    np.testing.assert_array_equal(pool.groups, groups)


def test_subpopulation_and_singletons_are_inside_the_random_group(random_run, tmp_path):
    workdir, store = random_run
    random_group = store.source_index()[store.groups() == 1]
    sub = pool_lib.load_pool(
        train_shadows.make_config("digits", mixture="subpopulation", **MIX, **TINY)
    )
    chosen = sub.source_index[sub.groups == 1]
    assert 0 < chosen.size < 100 and np.isin(chosen, random_group).all()
    config = train_shadows.make_config(
        "digits", mixture="singletons", singleton_workdir=str(workdir), singleton_threshold=0.2,
        **MIX, **TINY,
    )  # fmt: skip
    single = pool_lib.load_pool(config)
    chosen = single.source_index[single.groups == 1]
    assert chosen.size > 0 and np.isin(chosen, random_group).all()
    # Exactly the random group's examples memorized above the threshold in the first store.
    from lira_jax import memorization

    under = store.groups() == 1
    sig = memorization.memorization_signals(store.read_logits()[:, under], store.labels()[under])
    mem = memorization.memorization(store.keep()[:, under], sig.correct)
    np.testing.assert_array_equal(chosen, np.sort(random_group[mem > 0.2]))
    with pytest.raises(ValueError, match="differs in"):
        pool_lib.load_pool({**config, "ood_size": 200})
    with pytest.raises(ValueError, match="singleton_workdir"):
        pool_lib.load_pool({**config, "singleton_workdir": None})


def test_bad_mixture_settings_are_one_clear_error():
    config = train_shadows.make_config("digits", mixture="random", **MIX, **TINY)
    with pytest.raises(ValueError, match="ood_dataset='nope'"):
        pool_lib.load_pool({**config, "ood_dataset": "nope"})
    with pytest.raises(ValueError, match="multiple of the 10 classes"):
        pool_lib.load_pool({**config, "ood_size": 55})
    with pytest.raises(datasets.DatasetError, match="outside the pool"):
        pool_lib.load_pool({**config, "max_train": 1450})
    with pytest.raises(ValueError, match="tabular"):
        pool_lib.load_pool({**config, "dataset": "breast_cancer", "ood_dataset": "digits"})
    with pytest.raises(ValueError, match="cannot be combined"):
        pool_lib.load_pool({**config, "task": "parity"})
    assert "mixture" not in train_shadows.make_config("digits")  # plain configs unchanged

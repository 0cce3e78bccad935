"""The run loop with label tasks, canaries, label-DP and DP-SGD, and the BLIA binary."""

import json
import math
import shutil

import dp_accounting
import numpy as np
import pytest
import tensorstore as ts

from experiments import blia, train_shadows, verify
from lira_jax import store as store_lib
from lira_jax.attacks import blia as blia_lib
from lira_jax.data import load_dataset, membership
from lira_jax.train import run
from lira_jax.train.engine import Engine
from lira_jax.train.query import query_logits
from tests.binaries import run_binary

# breast_cancer's defaults are an mlp on 30 features: a block trains in about a second.
TINY_BC = dict(max_train=96, num_models=4, epochs=2)
# The config keys of every store written before label memorization and privacy existed
# (the store is a function of these).
PRE_LABEL_KEYS = (
    "dataset",
    "max_train",
    "arch",
    "num_models",
    "pkeep",
    "epochs",
    "batch_size",
    "learning_rate",
    "momentum",
    "weight_decay",
    "warmup_epochs",
    "augment_shift",
    "augment_mirror",
    "queries",
    "seed",
    "store_test_logits",
)


def _quiet(_msg):
    pass


def _train(workdir, dataset="breast_cancer", log=_quiet, **overrides):
    config = train_shadows.make_config(dataset, **{**TINY_BC, **overrides})
    return run.train_shadows(config, workdir, log=log)


def test_stores_written_before_the_new_keys_reopen_with_default_flags(tmp_path):
    # The config an older train_shadows wrote: exactly those keys, written out.
    old_config = {
        "dataset": "breast_cancer",
        "max_train": 96,
        "arch": "mlp",
        "num_models": 2,
        "pkeep": 0.5,
        "epochs": 1,
        "batch_size": 32,
        "learning_rate": 0.05,
        "momentum": 0.9,
        "weight_decay": 0.0,
        "warmup_epochs": 2.0,
        "augment_shift": 0,
        "augment_mirror": False,
        "queries": "identity",
        "seed": 0,
        "store_test_logits": False,
    }
    assert set(old_config) == set(PRE_LABEL_KEYS)
    run.train_shadows(old_config, tmp_path, log=_quiet)
    fingerprint = store_lib.open_store(tmp_path / "store").metadata["config_fingerprint"]
    for off in (
        {},
        dict(task="all", num_canaries=0, label_dp_epsilon=math.inf),
        dict(dp_accountant="rdp"),  # no DP-SGD: nothing to account
    ):
        config = train_shadows.make_config(
            "breast_cancer", max_train=96, num_models=2, epochs=1, **off
        )
        assert config == old_config
        assert store_lib.config_fingerprint(config) == fingerprint
        lines = []
        run.train_shadows(config, tmp_path, log=lines.append)
        assert any("nothing to train" in line for line in lines)
    # A key that is on is named in the refusal, as absent in the old store.
    config = train_shadows.make_config(
        "breast_cancer", max_train=96, num_models=2, epochs=1, num_canaries=5
    )
    with pytest.raises(store_lib.StoreMismatchError, match=r"num_canaries: <absent> -> 5"):
        run.train_shadows(config, tmp_path, log=_quiet)
    assert store_lib.open_store(tmp_path / "store").metadata["config_fingerprint"] == fingerprint


@pytest.fixture(scope="module")
def label_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("label_run")
    config = train_shadows.make_config(
        "breast_cancer", **TINY_BC, num_canaries=12, label_dp_epsilon=1.0
    )
    return config, workdir, run.train_shadows(config, workdir, log=_quiet)


def test_label_noise_run_stores_each_models_labels_and_trains_on_them(label_run):
    config, workdir, store = label_run
    assert store.config["num_canaries"] == 12 and store.config["label_dp_epsilon"] == 1.0
    assert "task" not in store.config and "dp_noise_multiplier" not in store.config
    assert store.num_queries == 1  # tabular: the identity query only
    ds = load_dataset("breast_cancer", None, 96)
    labels = membership.model_labels(
        0, ds.y_train, 2, np.arange(4), num_canaries=12, label_dp_epsilon=1.0
    )
    np.testing.assert_array_equal(store.labels(), ds.y_train)  # `labels` stays the truth
    np.testing.assert_array_equal(store.canary(), labels.canary)
    np.testing.assert_array_equal(store.private_labels(), labels.private_labels)
    np.testing.assert_array_equal(store.train_labels(), labels.train_labels)
    assert (store.train_labels() != store.private_labels()).any()  # ε = 1 flipped some
    # The record's accuracies are against the labels each model trained on.
    logits, keep = store.read_logits()[:, :, 0], store.keep()
    correct = logits.argmax(-1) == labels.train_labels
    record = store.records()[0]["extra"]
    np.testing.assert_allclose(
        record["train_accuracy"], (correct & keep).sum(1) / keep.sum(1), atol=1e-5
    )
    np.testing.assert_allclose(
        record["out_accuracy"], (correct & ~keep).sum(1) / (~keep).sum(1), atol=1e-5
    )
    assert "privacy" not in record and not (workdir / "results" / "privacy.json").exists()
    # The models trained on those labels: the engine given the same rows reproduces the
    # stored logits, and given the dataset's labels it does not.
    plan = run.prepare(config, workdir / "again")
    engine = Engine(plan.train_config, plan.dataset.x_train, plan.dataset.y_train, plan.steps)
    block = np.arange(4)
    noisy = engine.train(block, plan.keep, label_rows=labels.train_labels)
    plain = engine.train(block, plan.keep)
    ident = plan.queries
    np.testing.assert_allclose(
        query_logits(engine.model, noisy, ds.x_train, ident), store.read_logits(), atol=1e-5
    )
    assert not np.allclose(
        query_logits(engine.model, plain, ds.x_train, ident), store.read_logits()
    )


def test_verify_lists_damaged_creation_arrays(label_run, tmp_path):
    _, workdir, store = label_run
    copy = tmp_path / "run"
    shutil.copytree(workdir / "store", copy / "store")
    assert verify.verify_run(copy) == []
    handle = ts.open(store_lib._array_spec(copy / "store", "canary"), read=True, write=True)
    handle = handle.result()
    first = int(np.flatnonzero(store.canary())[0])
    handle[first].write(False).result()
    problems = verify.verify_run(copy)
    assert len(problems) == 1 and problems[0].startswith("corrupt array canary (sha256 differs)")
    assert "new --workdir" in problems[0]


def test_dp_sgd_run_writes_the_accountants_privacy(tmp_path):
    lines = []
    store = _train(tmp_path, log=lines.append, num_models=2, dp_noise_multiplier=1.1)
    assert store.config["dp_clip_norm"] == 1.0 and store.config["dp_delta"] == 1e-5
    keep = membership.keep_mask(0, 2, 96, 0.5)
    steps = math.ceil(keep.sum(1).max() / 32)  # batch 32: breast_cancer's default
    q, t = 1.0 / steps, 2 * steps
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(1.1)), t
    )
    epsilon = dp_accounting.pld.PLDAccountant().compose(event).get_epsilon(1e-5)
    privacy = json.loads((tmp_path / "results" / "privacy.json").read_text())
    assert privacy == {
        "accountant": "pld",
        "noise_multiplier": 1.1,
        "clip_norm": 1.0,
        "sampling_probability": q,
        "steps": t,
        "delta": 1e-5,
        "epsilon": pytest.approx(epsilon, rel=1e-9),
    }
    record = store.records()[0]["extra"]
    assert record["privacy"] == privacy
    assert len(record["dp_truncated"]) == 2 and record["dp_epochs_counted"] == 2
    assert all(v >= 0 for v in record["dp_truncated"])
    assert "DP-SGD privacy spent (pld accountant)" in lines[-2]
    # RDP is another config (its records differ), so another workdir; the startup phase
    # already has the privacy. RDP's ε is an upper bound, above PLD's.
    config = train_shadows.make_config(
        "breast_cancer",
        **{**TINY_BC, "num_models": 2},
        dp_noise_multiplier=1.1,
        dp_accountant="rdp",
    )
    assert config["dp_accountant"] == "rdp"
    rdp = run.prepare(config, tmp_path / "rdp").privacy
    assert rdp["accountant"] == "rdp" and rdp["epsilon"] > privacy["epsilon"]
    assert {k: v for k, v in rdp.items() if k not in ("accountant", "epsilon")} == {
        k: v for k, v in privacy.items() if k not in ("accountant", "epsilon")
    }


@pytest.mark.parametrize(
    "dataset,overrides,match",
    [
        ("digits", dict(task="pair:3,3"), r"task='pair:3,3'"),
        ("breast_cancer", dict(num_canaries=10**6), r"num_canaries=1000000 must be in"),
        ("breast_cancer", dict(label_dp_epsilon=-1.0), r"label_dp_epsilon=-1.0 must be >= 0"),
        ("breast_cancer", dict(dp_clip_norm=1.0), r"DP-SGD needs all of"),
        ("breast_cancer", dict(dp_noise_multiplier=-1.0), r"dp_noise_multiplier=-1.0"),
        ("breast_cancer", dict(queries="cross1"), r"queries='cross1' \(use --queries=identity\)"),
        ("breast_cancer", dict(augment_shift=2), r"augment_shift=2 \(use --augment_shift=0\)"),
    ],
)
def test_bad_label_and_dp_settings_write_nothing(tmp_path, dataset, overrides, match):
    with pytest.raises(ValueError, match=match):
        _train(tmp_path, dataset=dataset, **overrides)
    assert not (tmp_path / "store").exists()


def test_blia_binary_end_to_end(tmp_path):
    flags = [
        f"--workdir={tmp_path}",
        "--dataset=breast_cancer",
        "--max_train=96",
        "--num_models=4",
        "--epochs=2",
        "--num_canaries=24",
        "--epsilons=inf,1",
    ]
    proc = run_binary("blia", *flags)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "results" / "blia.json").read_text())
    assert results["epsilons"] == [1.0, "inf"]
    assert [e["workdir"] for e in results["entries"]] == ["eps_1", "eps_inf"]
    for entry, eps in zip(results["entries"], (1.0, None), strict=True):
        store = store_lib.open_store(tmp_path / entry["workdir"] / "store", complete=True)
        assert store.config.get("label_dp_epsilon") == eps and store.config["num_canaries"] == 24
        direct = blia_lib.evaluate(
            store.read_logits(),
            store.private_labels(),
            store.keep(),
            store.canary(),
            label_dp_epsilon=eps,
        )
        for key in ("epsilon", "bound", "confidence", "log_loss_margin", "violation"):
            assert entry[key] == direct[key]
        assert entry["epsilon_hat"] == {
            k: direct["audit"][k]["epsilon_hat"] for k in ("confidence", "log_loss_margin")
        }
        assert entry["dp_epsilon"] is None
        assert entry["confidence"]["num_pairs"] == 24 * 2  # every canary IN for 2 of 4 models
    assert results["entries"][0]["bound"] == pytest.approx(math.e / (1 + math.e))
    table = (tmp_path / "results" / "blia.md").read_text()
    assert "| 1.00 | 0.7311 |" in table and "| inf | 1.0000 |" in table
    assert (tmp_path / "results" / "blia.png").stat().st_size > 5000
    # A re-run (here through the library, with the config the flags give) trains nothing
    # and writes the same results.
    config = train_shadows.make_config(
        "breast_cancer", max_train=96, num_models=4, epochs=2, num_canaries=24
    )
    assert results["config"] == config
    lines = []
    assert blia.blia_sweep(config, tmp_path, [1.0, math.inf], log=lines.append) == results
    assert sum("nothing to train" in line for line in lines) == 2
    assert json.loads((tmp_path / "results" / "blia.json").read_text()) == results


def test_blia_refuses_what_it_cannot_attack_before_training(tmp_path):
    proc = run_binary("blia", f"--workdir={tmp_path}", "--dataset=digits", "--epsilons=1")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: BLIA infers binary labels") and "--task=pair:A,B" in last
    config = train_shadows.make_config("breast_cancer", **TINY_BC, num_canaries=8)
    for epsilons, match in (
        (["1", "-2"], r"--epsilons has '-2'; every ε must be >= 0"),
        (["1", "1.0"], "repeats a value"),
    ):
        with pytest.raises(ValueError, match=match):
            blia.blia_sweep(config, tmp_path, epsilons, log=_quiet)
    with pytest.raises(ValueError, match="give --num_canaries=K > 0"):
        blia.blia_sweep({**config, "num_canaries": 0}, tmp_path, [1.0], log=_quiet)
    with pytest.raises(ValueError, match="do not pass --label_dp_epsilon"):
        blia.blia_sweep({**config, "label_dp_epsilon": 2.0}, tmp_path, [1.0], log=_quiet)
    assert not any(tmp_path.iterdir())

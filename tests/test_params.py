"""Saved parameters (train_shadows --save_params): round trip, checksums, clear errors."""

import json
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest

from experiments import train_shadows
from experiments.verify import verify_run
from lira_jax import store as store_lib
from lira_jax.data import load_dataset
from lira_jax.train import load_params, params_sha256
from tests.binaries import run_binary

TINY = dict(max_train=120, arch="cnn16", num_models=4, epochs=1, batch_size=32)


def _quiet(_msg):
    pass


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Models 0-1 trained with saved params, models 2-3 (another job) without."""
    workdir = tmp_path_factory.mktemp("params_run")
    config = train_shadows.make_config("digits", **TINY)
    for model_range, save in (("0:2", True), ("2:4", False)):
        train_shadows.train_shadows(
            config, workdir, model_range=model_range, save_params=save, log=_quiet
        )
    return workdir


def test_saved_params_round_trip_reproduce_the_stored_logits_and_verify(run):
    loaded = load_params(run, [1, 0])
    assert loaded.models.tolist() == [1, 0] and loaded.num_classes == 10
    store = store_lib.open_store(run / "store")
    record = store.records()[0]
    x = load_dataset("digits", None, TINY["max_train"]).x_train
    for i, m in enumerate([1, 0]):
        one = jax.tree.map(lambda p, i=i: p[i], loaded.params)
        logits = np.asarray(loaded.model.apply(one, x))
        np.testing.assert_allclose(logits, store.read_logits(m)[:, 0], rtol=1e-5, atol=1e-5)
    # The record's checksum is that of the block's params in model order.
    block = jax.tree.map(lambda p: p[::-1], loaded.params)
    assert record["extra"]["params_sha256"] == params_sha256(block)
    assert verify_run(run) == []


def test_models_trained_without_save_params_get_one_error_naming_the_flag(run):
    with pytest.raises(store_lib.StoreError, match=r"models \[2, 3\].*--save_params"):
        load_params(run, [0, 2, 3])
    with pytest.raises(store_lib.StoreError, match="must be indices in"):
        load_params(run, [4])


def test_a_flipped_byte_in_saved_params_is_detected(run, tmp_path):
    copy = Path(shutil.copytree(run, tmp_path / "copy"))
    files = [p for p in (copy / "params" / "m000000-000002").rglob("*") if p.is_file()]
    largest = max(files, key=lambda p: p.stat().st_size)  # the array data
    data = bytearray(largest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    largest.write_bytes(bytes(data))
    problems = verify_run(copy)
    assert len(problems) == 1 and "[0, 2)" in problems[0], problems
    with pytest.raises(store_lib.StoreError, match=r"\[0, 2\)"):
        load_params(copy, [0])
    # A missing params directory is reported too.
    shutil.rmtree(copy / "params" / "m000000-000002")
    assert "missing" in verify_run(copy)[0]


def test_boundary_benchmark_binary_runs_on_saved_params(run):
    proc = run_binary(
        "bench.boundary",
        f"--workdir={run}",
        "--num_targets=2",
        "--num_examples=16",
        "--num_random=8",
        "--hsj_iterations=1",
        "--hsj_init_evals=5",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 targets x 16 examples" in proc.stdout and "queries/s" in proc.stdout
    assert "threshold=shadow: AUC" in proc.stdout and "threshold=random: AUC" in proc.stdout


def _without_seconds(entry):
    return {k: v for k, v in entry.items() if k != "seconds"}


def test_attack_binary_runs_the_querying_attacks_and_the_labels_exposure(run):
    from experiments import attack
    from lira_jax.attacks import ATTACKS, NEEDS_SCORES, label_only, needs_scores

    hsj = label_only.HSJConfig(iterations=1, init_evals=5, max_evals=10, init_size=8)
    query = label_only.QueryOptions(num_targets=2, hsj=hsj, num_random=8)
    logits = attack.attack(run, "all", query=query, log=_quiet)
    # "all": every registered attack, and both querying attacks (models 0-1 have params).
    assert set(logits) == set(ATTACKS) | set(label_only.QUERYING_ATTACKS)
    for name in label_only.QUERYING_ATTACKS:
        assert logits[name]["num_targets"] == 2 and 0 <= logits[name]["auc"] <= 1
    details = logits["label_only_boundary"]["details"]
    assert 1 <= details["queries_mean"] <= details["queries_max"]
    assert set(details["random_threshold_operating_point"]) >= {"tpr", "fpr"}

    # A target that exposes labels only (the CLI flag): score-based attacks are undefined
    # entries with the reason, label-only ones give exactly the entries computed from
    # logits (they read only the argmax; the sweep's masking column relies on it).
    proc = run_binary(
        "attack",
        f"--workdir={run}",
        "--exposure=labels",
        "--query_targets=0",  # all 4 targets: models 2-3 have no params, so no querying
        "--num_bootstrap=0",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    labels = json.loads((run / "results" / "attacks.json").read_text())
    assert set(labels) == set(ATTACKS)
    for name, entry in labels.items():
        if name in ATTACKS and needs_scores(ATTACKS[name]):
            assert entry == {
                "undefined": True,
                "reason": NEEDS_SCORES,
                "num_targets": 4,
                "num_examples": 120,
            }, name
        else:
            assert _without_seconds(entry) == _without_seconds(logits[name]), name
    assert "labels only" in (run / "results" / "attacks.md").read_text()

    # Three query targets: model 2 has no saved params and the store no test logits, so
    # "all" leaves both out, and naming one is one error naming the flag.
    query3 = label_only.QueryOptions(num_targets=3, hsj=hsj, num_random=8)
    names, querying = attack.select_attacks("all", store_lib.open_store(run / "store"), 4, query3)
    assert querying == [] and names == list(ATTACKS)
    with pytest.raises(ValueError, match=r"label_only_boundary needs .*\[2\].*--save_params"):
        attack.attack(run, "label_only_gap,label_only_boundary", query=query3, log=_quiet)
    with pytest.raises(ValueError, match="label_only_transfer needs .*--store_test_logits"):
        attack.attack(run, "label_only_transfer", query=query3, log=_quiet)

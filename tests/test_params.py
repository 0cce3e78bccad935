"""Saved parameters (train_shadows --save_params): round trip, checksums, clear errors."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from experiments import train_shadows
from experiments.verify import verify_run
from lira_jax import store as store_lib
from lira_jax.data import load_dataset
from lira_jax.train import load_params, params_sha256

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
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.benchmark_boundary",
            f"--workdir={run}",
            "--num_targets=2",
            "--num_examples=16",
            "--num_random=8",
            "--hsj_iterations=1",
            "--hsj_init_evals=5",
        ],
        cwd=repo,
        env={**os.environ, "PYTHONPATH": str(repo), "JAX_PLATFORMS": "cpu"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 targets x 16 examples" in proc.stdout and "queries/s" in proc.stdout
    assert "threshold=shadow: AUC" in proc.stdout and "threshold=random: AUC" in proc.stdout

"""The defense sweep binary (`experiments.label_only`) end to end on a tiny config."""

import json

import pytest

from lira_jax import store as store_lib
from lira_jax.attacks import NEEDS_SCORES
from tests.binaries import run_binary

TINY = ["--max_train=120", "--arch=cnn16", "--num_models=4", "--epochs=1", "--batch_size=32"]
HSJ = ["--hsj_iterations=1", "--hsj_init_evals=5", "--hsj_max_evals=10", "--hsj_init_size=8"]


def _cli(*args):
    return run_binary("label_only", *args, timeout=900)


def test_sweep_trains_one_store_per_setting_and_tabulates_every_exposure(tmp_path):
    attacks = "global_threshold,label_only_gap,label_only_augmentation_lira,label_only_boundary"
    proc = _cli(
        f"--workdir={tmp_path}",
        *TINY,
        "--weight_decays=0",
        "--dp_noise_multipliers=1",
        f"--attacks={attacks}",
        "--query_targets=2",
        "--hsj_random_inputs=8",
        "--num_bootstrap=20",
        *HSJ,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads((tmp_path / "results" / "label_only.json").read_text())
    entries = {(e["name"], e["exposure"]): e for e in out["settings"]}
    assert list(entries) == [
        ("wd_0", "logits"),
        ("wd_0", "labels"),
        ("dp_1", "logits"),
        ("dp_1", "labels"),
    ]
    # Each setting is a run of its own, with its defense in the stored config.
    for name, key, value in (("wd_0", "weight_decay", 0.0), ("dp_1", "dp_noise_multiplier", 1.0)):
        store = store_lib.open_store(tmp_path / name / "store", complete=True)
        assert store.config[key] == value
        assert (tmp_path / name / "params").is_dir()  # saved for the boundary attack
        per_setting = json.loads((tmp_path / name / "results" / "attacks.json").read_text())
        assert per_setting == entries[(name, "logits")]["results"]
    assert (tmp_path / "dp_1" / "results" / "privacy.json").is_file()
    assert "dp_clip_norm" in store_lib.open_store(tmp_path / "dp_1" / "store").config
    for name in ("wd_0", "dp_1"):
        logits, labels = entries[(name, "logits")]["results"], entries[(name, "labels")]["results"]
        assert set(logits) == set(labels) == set(attacks.split(","))
        assert 0 <= logits["global_threshold"]["auc"] <= 1
        assert labels["global_threshold"]["undefined"]
        assert labels["global_threshold"]["reason"] == NEEDS_SCORES
        for attack in attacks.split(",")[1:]:
            assert labels[attack] == logits[attack]
        assert logits["label_only_boundary"]["num_targets"] == 2
        assert 0 < entries[(name, "logits")]["train_accuracy"] <= 1
    table = (tmp_path / "results" / "label_only.md").read_text()
    assert (
        "**AUC**" in table and "**TPR at FPR = 1%**" in table and "**TPR at FPR = 0.1%**" in table
    )
    assert "| attack | wd_0 | wd_0 · labels only | dp_1 | dp_1 · labels only |" in table
    assert f"{logits['label_only_gap']['auc']:.4f}" in table
    assert (tmp_path / "results" / "label_only.png").stat().st_size > 5000
    assert "**AUC**" in proc.stdout


@pytest.mark.parametrize(
    "args, match",
    [
        (["--weight_decays=0,-1"], "--weight_decays has '-1'"),
        (["--dp_noise_multiplier=1"], "--dp_noise_multipliers instead"),
        (["--attacks=label_only_magic"], "Unknown attack"),
    ],
)
def test_bad_sweep_input_is_one_clear_line_and_writes_nothing(tmp_path, args, match):
    proc = _cli(f"--workdir={tmp_path / 'run'}", *TINY, *args)
    assert proc.returncode == 1
    assert match in proc.stderr.splitlines()[-1]
    assert not (tmp_path / "run").exists()

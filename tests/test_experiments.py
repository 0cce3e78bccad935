"""End-to-end tests of the binaries on tiny configs, and their answers to bad input."""

import json

import numpy as np
import pytest

from experiments import attack, train_shadows
from lira_jax import store as store_lib
from lira_jax.data import DatasetError
from tests.binaries import REPO, run_binary, run_python

TINY = dict(max_train=120, arch="cnn16", num_models=6, epochs=1, batch_size=32)
TINY_FLAGS = [f"--{k}={v}" for k, v in TINY.items()]


def _quiet(_msg):
    pass


def _train(workdir, model_range=None, **overrides):
    config = train_shadows.make_config("digits", **{**TINY, **overrides})
    return train_shadows.train_shadows(config, workdir, model_range=model_range, log=_quiet)


def _without_timing(results):
    return {k: {f: v for f, v in r.items() if f != "seconds"} for k, r in results.items()}


def test_pipeline_cli_end_to_end(tmp_path):
    proc = run_binary("pipeline", f"--workdir={tmp_path}", *TINY_FLAGS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "results" / "attacks.json").read_text())
    assert {"lira_online", "lira_offline", "global_threshold"} <= set(results)
    for res in results.values():
        assert 0 <= res["auc"] <= 1 and 0.5 <= res["balanced_accuracy"] <= 1
        assert set(res["tpr_at_fpr"]) == {"0.01", "0.001", "0.0001", "1e-05"}
        assert res["num_targets"] == 6
    assert (tmp_path / "results" / "roc.png").stat().st_size > 1000
    assert "| lira_online |" in proc.stdout  # the table is printed
    # The store is readable with plain zarr, without lira_jax.
    import zarr

    group = zarr.open_group(str(tmp_path / "store"), mode="r")
    assert group["logits"].shape == (6, 120, 5, 10)
    assert group["keep"][:].sum(0).tolist() == [3] * 120
    assert group.attrs["lira_jax"]["config"]["arch"] == "cnn16"
    # Running again trains nothing and gives the same results (deterministic given the store).
    again = run_binary("pipeline", f"--workdir={tmp_path}", *TINY_FLAGS)
    assert again.returncode == 0 and "nothing to train" in again.stderr
    assert _without_timing(json.loads((tmp_path / "results" / "attacks.json").read_text())) == (
        _without_timing(results)
    )


def test_cli_bad_input_is_one_clear_line(tmp_path):
    proc = run_binary("train_shadows", f"--workdir={tmp_path}", "--dataset=cifar11")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("error: Unknown dataset 'cifar11'")
    assert "Traceback" not in proc.stderr
    proc = run_binary("attack", f"--workdir={tmp_path}")
    assert proc.returncode == 1 and "train_shadows" in proc.stderr.splitlines()[-1]
    (tmp_path / "file").write_text("not a directory")
    proc = run_binary("train_shadows", f"--workdir={tmp_path / 'file' / 'run'}", *TINY_FLAGS)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "--workdir is writable" in proc.stderr.splitlines()[-1]


def test_model_ranges_fill_one_store_and_are_never_retrained(tmp_path):
    store = _train(tmp_path, model_range="0:2")
    assert store.completed_ranges() == [(0, 2)]
    first = store.read_logits(models=[0, 1], allow_incomplete=True)
    with pytest.raises(store_lib.IncompleteStoreError, match=r"--model_range=2:6"):
        attack.attack(tmp_path, log=_quiet)
    assert not (tmp_path / "results").exists()
    record = store.records()[0]
    store = _train(tmp_path)  # fills only what is missing
    assert store.missing_ranges() == [] and store.records()[0] == record
    np.testing.assert_array_equal(store.read_logits(models=[0, 1]), first)
    store.verify()
    results = attack.attack(tmp_path, attacks="lira_online,global_threshold", log=_quiet)
    assert set(results) == {"lira_online", "global_threshold"}


def test_other_config_in_same_workdir_is_refused_and_store_kept(tmp_path):
    store = _train(tmp_path, model_range="0:2")
    before = store.read_logits(models=[0, 1], allow_incomplete=True)
    with pytest.raises(store_lib.StoreMismatchError, match="seed"):
        _train(tmp_path, seed=1)
    with pytest.raises(store_lib.StoreMismatchError, match="epochs"):
        _train(tmp_path, epochs=2)
    after = store_lib.open_store(tmp_path / "store")
    assert after.completed_ranges() == [(0, 2)]
    np.testing.assert_array_equal(after.read_logits(models=[0, 1], allow_incomplete=True), before)


@pytest.mark.parametrize(
    "overrides,error,match",
    [
        (dict(arch="vgg"), ValueError, "Unknown arch 'vgg'"),
        (dict(pkeep=1.5), ValueError, r"pkeep=1.5 must be in \(0, 1\)"),
        (dict(num_models=1), ValueError, "at least 2 models"),
        (dict(queries="spin5"), ValueError, "Unknown query set 'spin5'"),
        (dict(augment_mirror=True), ValueError, "mirroring changes the labels"),
        (dict(epochs=0), ValueError, "epochs=0"),
    ],
)
def test_bad_training_input(tmp_path, overrides, error, match):
    with pytest.raises(error, match=match):
        _train(tmp_path, **overrides)
    assert not (tmp_path / "store").exists()  # rejected before anything is written


def test_bad_names_and_ranges(tmp_path):
    with pytest.raises(DatasetError, match="Unknown dataset 'nope'"):
        train_shadows.train_shadows(train_shadows.make_config("nope", **TINY), tmp_path)
    with pytest.raises(ValueError, match="model_range='4:2'"):
        _train(tmp_path, model_range="4:2")
    with pytest.raises(ValueError, match="Unknown attack"):
        attack.attack(tmp_path, attacks="lira,magic", log=_quiet)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("tiny_run")
    _train(workdir, store_test_logits=True)
    return workdir


def test_memorization_binary_matches_direct_estimate(tiny_run):
    from experiments import memorization

    summary = memorization.memorization_report(tiny_run, log=_quiet)
    rows = (tiny_run / "results" / "memorization.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert len(rows) == 1 + 120 and {"memorization", "privacy_score", "bucket"} <= set(header)
    table = np.genfromtxt(tiny_run / "results" / "memorization.csv", delimiter=",", names=True)
    # Independent estimate: P[correct | IN] - P[correct | OUT] from the raw zarr arrays.
    import zarr

    g = zarr.open_group(str(tiny_run / "store"), mode="r")
    correct = g["logits"][:, :, 0].argmax(-1) == g["labels"][:]
    keep = g["keep"][:]
    want = [correct[keep[:, n], n].mean() - correct[~keep[:, n], n].mean() for n in range(120)]
    np.testing.assert_allclose(table["memorization"], want, atol=1e-9)
    assert sum(summary["bucket_counts"].values()) == 120
    infl = np.load(tiny_run / "results" / "influence.npy")
    test_correct = g["test_logits"][:].argmax(-1) == g["test_labels"][:]
    j = 5
    want_j = [
        test_correct[keep[:, n], j].mean() - test_correct[~keep[:, n], j].mean() for n in range(120)
    ]
    np.testing.assert_allclose(infl[:, j], want_j, atol=1e-6)


def test_sample_complexity_binary(tiny_run):
    from experiments import sample_complexity

    result = sample_complexity.sample_complexity_report(
        tiny_run, ks=[1, 2], num_draws=2, num_targets=2, log=_quiet
    )
    saved = json.loads((tiny_run / "results" / "sample_complexity.json").read_text())
    assert saved["ks"] == [1, 2] == result["ks"]
    curve = saved["attacks"]["lira_online_fixed_variance"]["groups"]["all"]["auc"]
    assert len(curve["median"]) == 2 and all(0 <= v <= 1 for v in curve["median"])
    assert set(saved["hellinger"]) == set(saved["groups"])
    assert (tiny_run / "results" / "sample_complexity.png").stat().st_size > 1000


def test_attack_binary_groups_and_intervals(tiny_run):
    results = attack.attack(
        tiny_run,
        attacks="lira_online_fixed_variance,yeom,sablayrolles",
        num_bootstrap=20,
        groups="memorization",
        log=_quiet,
    )
    saved = json.loads((tiny_run / "results" / "attacks.json").read_text())
    assert saved == results and "seconds" not in saved["yeom"]
    for res in saved.values():
        lo, hi = res["ci"]["auc"]
        assert lo <= res["auc"] <= hi and 0 <= lo and hi <= 1
        sizes = [
            g["num_positives"] + g["num_negatives"] for k, g in res["groups"].items() if k != "all"
        ]
        assert sum(sizes) == res["num_positives"] + res["num_negatives"]
    md = (tiny_run / "results" / "attacks.md").read_text()
    assert "yeom · mem<0.1" in md


def test_compute_dtype_is_recorded_and_changes_only_rounding(tiny_run, tmp_path):
    config = train_shadows.make_config("digits", **{**TINY, "store_test_logits": True})
    store = train_shadows.train_shadows(
        config, tmp_path, model_range="0:2", compute_dtype="bfloat16", log=_quiet
    )
    assert {r["extra"]["compute_dtype"] for r in store.records()} == {"bfloat16"}
    bf16 = store.read_logits(models=[0, 1], allow_incomplete=True)
    f32 = store_lib.open_store(tiny_run / "store").read_logits(models=[0, 1])
    assert np.isfinite(bf16).all() and not np.array_equal(bf16, f32)  # really bf16 compute
    # Same models up to bfloat16 rounding (8 bits of mantissa) over one epoch.
    agree = (bf16.argmax(-1) == f32.argmax(-1)).mean()
    assert agree > 0.8, agree
    proc = run_binary("train_shadows", f"--workdir={tmp_path}/x", "--compute_dtype=float64")
    assert proc.returncode == 1 and "--compute_dtype=float64: value should be one of" in proc.stderr


def test_attack_binary_rmia_options(tiny_run):
    results = attack.attack(
        tiny_run, attacks="rmia_online,rmia_offline", rmia_gamma=1.0, rmia_offline_a="auto"
    )
    assert results["rmia_offline"]["details"]["gamma"] == 1.0
    chosen = results["rmia_offline"]["details"]["a_chosen"]
    assert sum(chosen.values()) == 6 and set(chosen) <= {f"{0.1 * i:.1f}" for i in range(11)}
    assert results["rmia_online"]["details"] == {"gamma": 1.0}
    proc = run_binary("attack", f"--workdir={tiny_run}", "--rmia_offline_a=best")
    assert proc.returncode == 1
    assert "--rmia_offline_a='best' must be a number in [0, 1] or 'auto'" in proc.stderr


def test_null_calibration_binary(tmp_path):
    from experiments import null_calibration

    out = null_calibration.null_calibration(tmp_path, [8], 1, num_examples=300, log=_quiet)
    saved = json.loads((tmp_path / "results" / "null_calibration.json").read_text())
    assert saved["mean_auc"] == out["mean_auc"] and set(out["mean_auc"]) == set(attack.ATTACKS)
    per_store = json.loads((tmp_path / "m8_s0" / "results" / "attacks.json").read_text())
    for name, res in per_store.items():
        assert out["auc"][name]["8"] == [res["auc"]]
        assert abs(res["auc"] - 0.5) < 0.05, name  # no membership signal at all
    store = store_lib.open_store(tmp_path / "m8_s0" / "store", complete=True)
    assert store.config["dataset"] == "null" and store.keep().sum(0).tolist() == [4] * 300
    assert "| lira_online |" in (tmp_path / "results" / "null_calibration.md").read_text()


def test_every_experiment_imports_in_one_process():
    """absl flags are process-global: two binaries defining one flag name cannot both load.

    Pipelines and tests import several binaries together, so a collision must fail here,
    in a fresh interpreter, whatever order the rest of the suite happens to import them in.
    """
    root = REPO / "experiments"
    names = sorted(
        ".".join(p.relative_to(root).with_suffix("").parts)
        for p in root.rglob("*.py")
        if p.stem != "__init__"
    )
    assert {"train_shadows", "bench.throughput", "bench.attacks", "bench.device"} <= set(names)
    code = "import importlib\n" + "".join(
        f"importlib.import_module('experiments.{n}')\n" for n in names
    )
    proc = run_python("-c", code, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]

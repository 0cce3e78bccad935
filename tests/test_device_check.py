"""The accelerator check (scripts/device_check.sh, experiments.bench.device) at its tiny size
on the CPU, as the device machine will run it: offline, without the optional heavy packages,
without a `python` on PATH. No timing assertions."""

import json
import os
import re
import subprocess
import sys
import tomllib

import numpy as np
import pytest

from experiments.bench import device
from tests.binaries import REPO, binary_env, run_binary, run_python

_BLOCKED = "raise ImportError('not on the accelerator machine: the check must not import it')\n"


@pytest.fixture(scope="module")
def tiny_check(tmp_path_factory):
    root = tmp_path_factory.mktemp("device_check")
    # Packages the machine lacks (or the check must not need) fail to import; a `python` or
    # `python3` found on PATH fails loudly: every stage must run the interpreter given.
    blocked, trap, wheels = root / "blocked", root / "trap", root / "no_wheels"
    for name in device.HEAVY_OPTIONAL:
        (blocked / name).mkdir(parents=True)
        (blocked / name / "__init__.py").write_text(_BLOCKED)
    trap.mkdir()
    for name in ("python", "python3"):
        (trap / name).write_text("#!/bin/sh\necho 'a python from PATH ran' >&2\nexit 97\n")
        (trap / name).chmod(0o755)
    wheels.mkdir()
    env = binary_env(
        PYTHON=sys.executable,
        PYTHONPATH=str(blocked),
        PATH=f"{trap}:/usr/bin:/bin",
        OUT=str(root / "out"),
        WORK=str(root / "work"),
        WHEELS=str(wheels),
    )
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "device_check.sh"), "--size=tiny"],
        cwd=root,  # the script finds the repository by its own path
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads((root / "out" / "device_check.json").read_text())
    return root, data, proc


def test_every_stage_runs_offline_without_optional_packages(tiny_check):
    root, data, proc = tiny_check
    assert data["finished"] and data["size"] == "tiny"
    statuses = {k: v["status"] for k, v in data["stages"].items()}
    assert statuses == dict.fromkeys(device.STAGES, "ok"), {
        k: v["error"] for k, v in data["stages"].items() if v["status"] != "ok"
    }
    dev = data["stages"]["devices"]["result"]
    assert dev["backend"] == "cpu" and dev["executable"] == sys.executable
    assert dev["heavy_optional_imported"] == []  # and importing one would have failed
    assert dev["importable"]["dp_accounting"] is True
    assert data["install"]["rc"] == "none" and "no wheels" in data["install"]["log"]
    logs = proc.stderr + (root / "out" / "device_check.log").read_text()
    assert "a python from PATH ran" not in logs
    md = (root / "out" / "device_check.md").read_text()
    for name in device.STAGES:
        assert re.search(rf"^\| {name} \| ok \|", md, re.M), name
    assert "### float32 against bfloat16 compute" in md and "## Engine benchmark" in md


def test_training_stages_report_what_the_runs_wrote(tiny_check):
    root, data, _ = tiny_check
    size = device.SIZES["tiny"]
    for dtype in ("float32", "bfloat16"):
        res = data["stages"][f"train_{dtype}"]["result"]
        run = root / "work" / f"run_{dtype}"
        log = (root / "work" / f"train_{dtype}.log").read_text()
        line = [ln for ln in log.splitlines() if "phases:" in ln][-1]
        for key in ("startup", "compile", "train", "query", "store_write", "total"):
            assert f"{key}={res['phases'][key]:.1f}s" in line
        assert res["models"] == size.models and res["epochs"] == size.epochs
        records = [json.loads(p.read_text()) for p in (run / "store" / "_blocks").glob("m*.json")]
        assert {r["extra"]["compute_dtype"] for r in records} == {dtype}
        test_acc = [a for r in records for a in r["extra"]["test_accuracy"]]
        assert res["test_accuracy"] == pytest.approx(np.mean(test_acc))
        g = data["goal"][dtype]
        p = res["phases"]
        assert g["seconds_per_epoch"] == pytest.approx(p["train"] / size.epochs)
        assert g["epochs_in_goal"] == pytest.approx(
            max(0.0, (device.GOAL_SECONDS - (p["total"] - p["train"])) / g["seconds_per_epoch"])
        )
    # The dtype comparison, recomputed from the two stores with plain zarr.
    import zarr

    cmp = data["comparison"]
    a, b = (
        zarr.open_group(str(root / "work" / f"run_{d}" / "store"), mode="r")["logits"][:, :, 0]
        for d in ("float32", "bfloat16")
    )
    assert cmp["query"] == "id_dy+0_dx+0" and cmp["models_compared"] == size.models
    assert cmp["prediction_agreement"] == pytest.approx((a.argmax(-1) == b.argmax(-1)).mean())
    assert cmp["max_abs_logit_difference"] == pytest.approx(np.abs(a - b).max())
    assert cmp["max_abs_logit_difference"] > 0  # bfloat16 really changed the arithmetic


def test_attack_and_benchmark_stages_report_their_outputs(tiny_check):
    root, data, _ = tiny_check
    attacks = json.loads((root / "work" / "run_float32" / "results" / "attacks.json").read_text())
    got = data["stages"]["attack"]["result"]
    assert set(got) == set(attacks) and {"lira_online", "yeom"} <= set(got)
    assert all(got[k]["auc"] == attacks[k].get("auc") for k in got)
    scoring = data["stages"]["attack_scoring"]["result"]
    assert scoring["shape"] == {"M": 8, "N": 200, "A": 18, "C": 10}
    assert set(scoring["attacks"]) == set(attacks)  # both ran every attack
    tp = data["stages"]["throughput"]["result"]["settings"]["cifar_tiny"]
    assert [e["models"] for e in tp["engine"]] == [4]
    assert tp["flax_loop"]["models"] == 1 and isinstance(tp["auto_block"], int)
    for e in tp["engine"]:
        assert e["model_epochs_per_s"] == pytest.approx(e["model_epochs"] / e["seconds"])


def test_a_stage_past_its_time_is_killed_and_the_rest_still_recorded(tmp_path):
    proc = run_binary(
        "bench.device",
        "--size=tiny",
        "--stages=throughput,attack,attack_scoring",
        "--budget_s=6",
        f"--out={tmp_path}",
        f"--work={tmp_path / 'work'}",
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((tmp_path / "device_check.json").read_text())
    stages = data["stages"]
    assert stages["throughput"]["status"] == "timeout"
    assert stages["throughput"]["error"].startswith("killed after 6 s")
    assert stages["attack"]["status"] == "skipped" and "train_float32" in stages["attack"]["error"]
    assert stages["attack_scoring"]["status"] == "skipped"
    assert "budget is spent" in stages["attack_scoring"]["error"]
    md = (tmp_path / "device_check.md").read_text()
    assert data["finished"] and "| throughput | timeout |" in md


def test_stage_timeouts_share_the_budget():
    caps = dict(a=10, b=20, c=30)
    order = ["a", "b", "c"]
    assert device.stage_timeout("a", 100, caps, order) == 50  # 100 - (20 + 30)
    assert device.stage_timeout("a", 40, caps, order) == 10  # its cap, come what may
    assert device.stage_timeout("c", 100, caps, order) == 100  # the last takes what is left
    assert device.stage_timeout("b", 5, caps, order) == 5  # never more than is left


def test_bad_flags_are_one_clear_line(tmp_path):
    proc = run_binary("bench.device", "--stages=throughput,warp", f"--out={tmp_path}")
    assert proc.returncode == 1 and "Unknown --stages ['warp']" in proc.stderr
    proc = run_binary("bench.device")
    assert proc.returncode == 1 and "--out is required" in proc.stderr
    proc = run_binary("bench.device", f"--out={tmp_path}", "--train_models=1")
    assert proc.returncode == 1 and "--train_models=1 >= 2" in proc.stderr
    assert not (tmp_path / "device_check.json").exists()


def test_wheel_list_pins_one_version_of_each_and_matches_the_project():
    from packaging.requirements import Requirement

    lines = (REPO / "scripts" / "device_wheels.txt").read_text().splitlines()
    pins = [ln.split("#")[0].strip() for ln in lines if ln.split("#")[0].strip()]
    names = [p.split("==")[0].lower() for p in pins]
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*", p) for p in pins), pins
    assert len(names) == len(set(names))  # two versions of one package stop the install
    assert {"dp-accounting", "dm-tree", "jax-privacy", "pydantic", "pydantic-core"} <= set(names)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in map(Requirement, project):
        name = dep.name.lower()
        if name in names:
            version = pins[names.index(name)].split("==")[1]
            assert dep.specifier.contains(version), (dep, version)
    assert os.access(REPO / "scripts" / "device_check.sh", os.X_OK)


_PARSE_EVERY_STAGE = r"""
import importlib, json, sys
from pathlib import Path
from absl import flags
from experiments.bench import device
for size in device.SIZES.values():
    argvs = device.stage_argvs(size, Path("/nonexistent"), size.epochs, size.models)
    for name, argv in argvs.items():
        if argv[0] != "-m":
            continue
        importlib.import_module(argv[1])
        flags.FLAGS.unparse_flags()
        flags.FLAGS(["prog", *argv[2:]])  # raises on an unknown flag or a bad value
print("parsed")
"""


def test_every_stage_flag_of_both_sizes_is_known_to_its_binary():
    """The device sizes run only on a device: their flags are checked here, unrun."""
    proc = run_python("-c", _PARSE_EVERY_STAGE, timeout=300)
    assert proc.returncode == 0 and "parsed" in proc.stdout, proc.stderr[-2000:]
    size = device.SIZES["device"]
    train = device.stage_argvs(size, REPO, size.epochs, size.models)["train_float32"]
    assert "--num_models=256" in train and "--dataset=cifar_synth" in train
    assert "--queries=shift1" in train and "--augment_mirror" in train  # 18 queries
    assert sum(size.caps.values()) <= size.budget_s

"""The DP audit binary (`experiments.dp_audit`) end to end: a tiny breast_cancer sweep, the
outputs and their contracts, resuming, bad input, and a planted bug (DP-SGD without noise
while the accountant claims σ = 1) caught as a violation with exit status 1."""

import json
import math
import re

import numpy as np
import pytest
from jax_privacy import auditing

from lira_jax import failpoints
from lira_jax import store as store_lib
from lira_jax.train import accounting
from tests.binaries import run_binary, run_python

TINY = ["--dataset=breast_cancer", "--num_models=8", "--epochs=2", "--checkpoint_every=0"]


def _cli(*args):
    return run_binary("dp_audit", *args, timeout=900)


def test_sweep_audits_every_setting_and_writes_the_outputs(tmp_path):
    proc = _cli(f"--workdir={tmp_path}", *TINY, "--noise_multipliers=1", "--num_bootstrap=20")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = tmp_path / "results"
    out = json.loads((results / "dp_audit.json").read_text())
    got = [(e["setting"], e["attack"]) for e in out["entries"]]
    assert got == [
        ("nonprivate", "lira_online"),
        ("nonprivate", "global_threshold"),
        ("dp_1", "lira_online"),
        ("dp_1", "global_threshold"),
    ]
    privacy = json.loads((tmp_path / "dp_1" / "results" / "privacy.json").read_text())
    scores = np.load(results / "dp_audit_scores.npz")
    for e in out["entries"]:
        dp = e["setting"] == "dp_1"
        assert e["noise_multiplier"] == (1.0 if dp else None)
        assert e["accountant_epsilon"] == (privacy["epsilon"] if dp else None)
        assert e["canary_kind"] == "all examples" and e["num_canaries"] == 456
        assert e["num_targets"] == 8 and e["num_in"] + e["num_out"] == 8 * 456
        for key in (
            "epsilon_lower_multi_model",
            "epsilon_lower_one_run_mean",
            "epsilon_lower_one_run_max",
            "epsilon_lower_one_run_fdp_mean",
            "epsilon_lower_one_run_fdp_max",
        ):
            assert e[key] >= 0
        assert not e["violation"] and e["violations"] == []
        if dp:  # a correct run: no bound above the accountant
            assert e["epsilon_lower_multi_model"] <= e["accountant_epsilon"]
        assert 0 <= e["auc"] <= 1 and set(e["tpr_at_fpr"]) == {"0.01", "0.001"}
        lo, hi = e["auc_ci"]
        assert lo <= e["auc"] <= hi
        # The saved scores recompute the bound with jax-privacy alone.
        key = f"{e['setting']}__{e['attack']}"
        ins, outs = scores[f"{key}__in"], scores[f"{key}__out"]
        assert (ins.size, outs.size) == (e["num_in"], e["num_out"])
        bound = auditing.CanaryScoreAuditor(ins, outs).epsilon_clopper_pearson(0.05, e["delta"])
        assert bound == pytest.approx(e["epsilon_lower_multi_model"])
    # The non-private store has no DP-SGD keys; the DP one has the defaults.
    assert "dp_delta" not in store_lib.open_store(tmp_path / "nonprivate" / "store").config
    assert store_lib.open_store(tmp_path / "dp_1" / "store").config["dp_delta"] == 1e-5
    table = (results / "dp_audit.md").read_text()
    assert "| dp_1 | 1 | lira_online |" in table and "— (non-private)" in table
    assert "| setting | σ | attack | accountant ε |" in proc.stdout
    assert (results / "dp_audit.png").stat().st_size > 5000
    # Resumable: a re-run trains nothing and writes the same results.
    again = _cli(f"--workdir={tmp_path}", *TINY, "--noise_multipliers=1", "--num_bootstrap=20")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "nothing to train" in again.stderr
    assert json.loads((results / "dp_audit.json").read_text()) == out


@pytest.mark.parametrize(
    "args, match",
    [
        (["--significance=0.7"], "--significance=0.7 must be in"),
        (["--dp_noise_multiplier=1"], "--noise_multipliers"),
        (["--dp_noise_multipliers=1"], "belongs to experiments.label_only"),
        (["--noise_multipliers=1,x"], "--noise_multipliers has 'x'"),
        (["--attacks=nope"], "Unknown attack"),
        (["--noise_multipliers=", "--nononprivate"], "No setting to audit"),
        (["--audit_canaries=9999"], r"audit_canaries=9999 must be in \[1, 456\]"),
    ],
)
def test_bad_input_is_one_clear_line_and_writes_nothing(tmp_path, args, match):
    proc = _cli(f"--workdir={tmp_path / 'run'}", *TINY, *args)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ")
    assert re.search(match, proc.stderr), proc.stderr[-2000:]
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").rglob("zarr.json"))


# Sized so that noise-free training memorises out-of-distribution canaries while σ = 1
# claims a small ε: batch 1 of ~228 IN examples (q ≈ 1/240) for 6 epochs, ε ≈ 0.8 at δ 1e-5;
# per-example updates lr·C (the denominator is the batch size, 1). Measured: the planted
# run's multi-model bound is 1.0–1.3 (both attacks), the correct run's 0.0.
PLANTED = [
    "--dataset=breast_cancer",
    "--arch=mlp",
    "--num_models=16",
    "--epochs=6",
    "--batch_size=1",
    "--learning_rate=0.1",
    "--warmup_epochs=0",
    "--audit_canaries=100",
    "--audit_canary_kind=ood",
    "--noise_multipliers=1",
    "--nononprivate",
    "--checkpoint_every=0",
    "--num_bootstrap=0",
]


def test_a_planted_bug_noise_off_is_caught_as_a_violation(tmp_path):
    proc = run_python(
        "-m",
        "experiments.dp_audit",
        f"--workdir={tmp_path}",
        *PLANTED,
        timeout=900,
        **{failpoints.BUG_ENV_VAR: "dp_noise_off"},
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "PLANTED BUG" in proc.stderr  # the engine says what it is doing
    assert "DP-SGD AUDIT VIOLATION" in proc.stderr
    out = json.loads((tmp_path / "results" / "dp_audit.json").read_text())
    privacy = json.loads((tmp_path / "dp_1" / "results" / "privacy.json").read_text())
    steps = privacy["steps"] // 6  # the largest IN count of a model: batch 1
    assert 228 <= steps < 260 and privacy["sampling_probability"] == pytest.approx(1 / steps)
    want = accounting.dp_sgd_privacy(
        noise_multiplier=1.0,
        sampling_probability=1 / steps,
        steps=6 * steps,
        delta=1e-5,
        clip_norm=1,
    )["epsilon"]
    for e in out["entries"]:
        assert e["accountant_epsilon"] == pytest.approx(want) and want < 1.0
        assert e["canary_kind"] == "ood" and e["num_canaries"] == 100
    assert any(e["violation"] for e in out["entries"])
    caught = max(e["epsilon_lower_multi_model"] for e in out["entries"])
    assert caught > want and not math.isinf(caught)

"""Tests of the adaptive shadow-model budget: the paired keep rule, memorization with
intervals, the paired LiRA scores, the selection, the stopping rule, and the binary."""

import json

import numpy as np
import pytest
import scipy.stats

from experiments import budget as budget_lib
from experiments import train_shadows
from lira_jax import attacks
from lira_jax import memorization as mz
from lira_jax import shadow_budget as sb
from lira_jax.attacks.lira import lira_scores
from lira_jax.data import membership
from lira_jax.data.null import null_logits
from lira_jax.train import engine
from tests.binaries import run_binary, run_python
from tests.test_null_calibration import clustered_auc_and_se


def _quiet(_msg):
    pass


# -- The paired keep rule ------------------------------------------------------------------


@pytest.mark.parametrize("num_examples", [7, 300])
def test_paired_mask_is_balanced_on_every_even_prefix(num_examples):
    keep = membership.paired_keep_mask(3, 40, num_examples)
    for k in range(2, 41, 2):
        assert (keep[:k].sum(axis=0) == k // 2).all()
    rows = keep.sum(axis=1)
    assert (rows[0::2] == num_examples // 2).all() and (
        rows[1::2] == num_examples - rows[0::2]
    ).all()
    # Steps per epoch are set by the largest row: the same for every number of models.
    assert {engine.steps_per_epoch(keep[:k], 32) for k in (2, 8, 40)} == {
        -(-(num_examples - num_examples // 2) // 32) or 1
    }


def test_paired_mask_rows_do_not_depend_on_the_number_of_models():
    small, large = membership.paired_keep_mask(5, 8, 500), membership.paired_keep_mask(5, 64, 500)
    np.testing.assert_array_equal(small, large[:8])
    np.testing.assert_array_equal(small, membership.paired_keep_mask(5, 8, 500))
    assert (small != membership.paired_keep_mask(6, 8, 500)).mean() > 0.4
    # Different pairs are independent halves: two pairs agree on about half the examples.
    agree = (large[0] == large[2 * np.arange(1, 32)]).mean(axis=1)
    assert abs(agree.mean() - 0.5) < 0.02
    assert membership.partner(np.arange(6)).tolist() == [1, 0, 3, 2, 5, 4]


def test_keep_rule_errors_name_the_fix():
    with pytest.raises(ValueError, match="even number of models"):
        membership.paired_keep_mask(0, 5, 10)
    with pytest.raises(ValueError, match="needs pkeep=0.5"):
        membership.keep_mask_of_rule("pairs", 0, 8, 10, 0.7)
    with pytest.raises(ValueError, match="choose one of"):
        membership.keep_mask_of_rule("halves", 0, 8, 10)
    np.testing.assert_array_equal(
        membership.keep_mask_of_rule("balanced", 1, 8, 10), membership.keep_mask(1, 8, 10)
    )


TINY = dict(max_train=120, arch="cnn16", epochs=1, batch_size=32)


def test_run_config_has_no_keep_rule_when_off_and_pairs_train_the_same_models(tmp_path):
    config = train_shadows.make_config("digits", **TINY, num_models=4)
    assert "keep_rule" not in config  # old stores and fingerprints are unchanged
    assert train_shadows.make_config("digits", **TINY, num_models=4, keep_rule="balanced") == config
    with pytest.raises(ValueError, match="needs pkeep=0.5"):
        bad = train_shadows.make_config(
            "digits", **TINY, num_models=4, keep_rule="pairs", pkeep=0.6
        )
        train_shadows.train_shadows(bad, tmp_path / "bad", log=_quiet)
    assert not (tmp_path / "bad").exists()  # nothing written
    small = train_shadows.make_config("digits", **TINY, num_models=4, keep_rule="pairs")
    large = train_shadows.make_config("digits", **TINY, num_models=8, keep_rule="pairs")
    a = train_shadows.train_shadows(small, tmp_path / "a", log=_quiet)
    b = train_shadows.train_shadows(large, tmp_path / "b", model_range="0:4", log=_quiet)
    np.testing.assert_array_equal(a.keep(), membership.paired_keep_mask(0, 4, 120))
    np.testing.assert_array_equal(b.keep()[:4], a.keep())
    assert b.missing_ranges() == [(4, 8)] and b.config["keep_rule"] == "pairs"
    # The first 4 models of an 8-model store are the models of the 4-model store.
    np.testing.assert_allclose(
        b.read_logits(models=slice(0, 4)), a.read_logits(), rtol=1e-4, atol=1e-4
    )
    # The completed prefix is read, and attacked, like a complete store.
    assert b.completed_prefix() == 4 and a.completed_prefix() == 4
    prefix = sb.read_prefix(b)
    assert prefix.phi.shape == (4, 120, 5) and prefix.keep.shape == (4, 120)
    np.testing.assert_array_equal(prefix.keep, a.keep())
    res, _ = attacks.evaluate_logits(
        b.read_logits(models=slice(0, 4)),
        b.labels(),
        prefix.keep,
        ["lira_online_fixed_variance"],
        num_targets=4,
    )
    assert 0 <= res["lira_online_fixed_variance"]["auc"] <= 1


# -- Memorization with an interval ---------------------------------------------------------


@pytest.mark.parametrize(
    "x_in,n_in,x_out,n_out,lo,hi",
    [  # Newcombe (1998), Table II, method 10 (hybrid score).
        (56, 70, 48, 80, 0.0524, 0.3339),
        (9, 10, 3, 10, 0.1705, 0.8090),
        (0, 10, 0, 20, -0.1611, 0.2775),
        (10, 10, 0, 20, 0.6791, 1.0),
    ],
)
def test_memorization_interval_matches_newcombes_table(x_in, n_in, x_out, n_out, lo, hi):
    keep = np.r_[np.ones(n_in, bool), np.zeros(n_out, bool)][:, None]
    correct = np.r_[np.arange(n_in) < x_in, np.arange(n_out) < x_out].astype(float)[:, None]
    got = mz.memorization_interval(keep, correct)
    assert got.mem[0] == pytest.approx(x_in / n_in - x_out / n_out)
    assert got.lo[0] == pytest.approx(lo, abs=1e-4) and got.hi[0] == pytest.approx(hi, abs=1e-4)
    assert (got.num_in[0], got.num_out[0]) == (n_in, n_out)
    np.testing.assert_allclose(got.mem, mz.memorization(keep, correct))


def _exact_coverage(n_in, n_out, interval_fn):
    """Exact coverage of an interval for p_in − p_out, by enumerating every outcome."""
    x_in, x_out = (g.ravel() for g in np.meshgrid(np.arange(n_in + 1), np.arange(n_out + 1)))
    lo, hi = interval_fn(x_in, x_out)
    coverage = []
    for p_in in np.linspace(0.02, 0.98, 17):
        for p_out in np.linspace(0.02, 0.98, 17):
            w = scipy.stats.binom.pmf(x_in, n_in, p_in) * scipy.stats.binom.pmf(x_out, n_out, p_out)
            d = p_in - p_out
            coverage.append(w[(lo <= d + 1e-12) & (d - 1e-12 <= hi)].sum())
    return np.array(coverage)


@pytest.mark.parametrize("n", [4, 8, 16])
def test_memorization_interval_keeps_its_coverage_with_few_models(n):
    def newcombe(x_in, x_out):
        keep = np.repeat(np.r_[np.ones(n, bool), np.zeros(n, bool)][:, None], x_in.size, 1)
        rows = np.arange(n)[:, None]
        correct = np.r_[rows < x_in[None], rows < x_out[None]].astype(float)
        got = mz.memorization_interval(keep, correct)
        return got.lo, got.hi

    def wald(x_in, x_out):
        p, q = x_in / n, x_out / n
        half = 1.96 * np.sqrt(p * (1 - p) / n + q * (1 - q) / n)
        return p - q - half, p - q + half

    ours = _exact_coverage(n, n, newcombe)
    # Near nominal on average over the (p_in, p_out) grid, and never far below it ...
    assert 0.94 <= ours.mean() <= 0.97 and ours.min() >= 0.84
    # ... where the normal interval of the same estimate undercovers badly with few models.
    if n <= 8:
        assert wald(np.array([n]), np.array([0]))[0][0] == pytest.approx(1.0)  # zero width
        assert _exact_coverage(n, n, wald).mean() < ours.mean() - 0.05


def test_memorization_interval_refuses_soft_correctness_and_uncovered_examples():
    keep = membership.keep_mask(0, 6, 5)
    with pytest.raises(ValueError, match="0/1 correctness"):
        mz.memorization_interval(keep, np.full(keep.shape, 0.3))
    with pytest.raises(ValueError, match="level"):
        mz.memorization_interval(keep, np.ones(keep.shape), level=1.0)
    with pytest.raises(ValueError, match="fewer than 1 OUT"):
        mz.memorization_interval(np.ones((4, 3), bool), np.ones((4, 3)))


# -- Paired LiRA scores --------------------------------------------------------------------


def test_paired_scores_equal_lira_without_the_target_and_its_partner():
    rng = np.random.default_rng(0)
    keep = membership.paired_keep_mask(1, 10, 60)
    phi = rng.normal(size=(10, 60, 2)) + 1.5 * keep[..., None]
    targets = np.array([0, 3, 9])
    got = sb.paired_lira_scores(phi, keep, targets)
    for i, t in enumerate(targets):
        shadows = [m for m in range(10) if m not in (t, t ^ 1)]
        # Every example keeps 4 IN and 4 OUT shadows, whatever t's membership.
        assert (keep[shadows].sum(0) == 4).all()
        expected = lira_scores(phi[t], phi[shadows], keep[shadows], online=True, fix_variance=True)
        np.testing.assert_allclose(got[i], expected, rtol=1e-12)
    with pytest.raises(ValueError, match="complementary pairs"):
        sb.paired_lira_scores(phi, membership.keep_mask(1, 10, 60), targets)
    with pytest.raises(ValueError, match="complementary pairs"):
        sb.paired_lira_scores(phi[:9], keep[:9], targets[:1])


@pytest.mark.parametrize("num_models", [8, 16])
def test_paired_scores_are_null_calibrated(num_models):
    """AUC 0.5 on outputs without membership signal (the bound of test_null_calibration)."""
    aucs, ses = [], []
    for seed in (0, 1, 2):
        logits, labels, _ = null_logits(num_models, 2000, seed=seed)
        keep = membership.paired_keep_mask(seed, num_models, 2000)
        phi = mz.memorization_signals(logits, labels).phi
        scores = sb.paired_lira_scores(phi, keep, np.arange(num_models))
        units = np.broadcast_to(np.arange(2000), scores.shape)
        auc, se = clustered_auc_and_se(scores.ravel(), keep.ravel(), units.ravel())
        aucs.append(auc)
        ses.append(se)
    assert abs(np.mean(aucs) - 0.5) <= 4 * np.sqrt(np.sum(np.square(ses))) / 3


# -- Roles, selection and the stopping rule ------------------------------------------------


def test_model_roles_alternate_whole_pairs_after_the_pilot():
    roles = sb.model_roles(16, 4).tolist()
    assert (
        roles
        == ["pilot"] * 4
        + ["stopping"] * 2
        + ["evaluation"] * 2
        + ["stopping"] * 2
        + ["evaluation"] * 2
        + ["stopping"] * 2
        + ["evaluation"] * 2
    )


def _planted(num_models=64, num_examples=600, num_memorized=30, seed=0, gap=5.0):
    """A paired store whose `num_memorized` examples are memorized (IN correct, OUT not)."""
    rng = np.random.default_rng(seed)
    keep = membership.paired_keep_mask(seed, num_models, num_examples)
    memorized = np.zeros(num_examples, bool)
    memorized[rng.choice(num_examples, num_memorized, replace=False)] = True
    mu_out = np.where(memorized, -2.0, rng.normal(3.0, 1.0, num_examples))
    effect = np.where(memorized, gap, 0.2)
    phi = mu_out + effect * keep + rng.normal(size=keep.shape)
    phi = np.stack([phi, phi + 0.3 * rng.normal(size=keep.shape)], axis=-1)
    correct = (phi[:, :, 0] > 0).astype(float)
    return sb.Prefix(phi, correct, keep), memorized


def _grow(full):
    return lambda k: sb.Prefix(full.phi[:k], full.correct[:k], full.keep[:k])


def test_selection_by_memorization_ranks_by_the_lower_bound_then_privacy():
    full, memorized = _planted()
    pilot = _grow(full)(8)
    chosen = sb.pilot_selection(pilot, sb.BudgetSettings(top=30))
    assert memorized[chosen["indices"]].mean() >= 0.9
    lo, mem = chosen["memorization_lo"], chosen["memorization"]
    priv = chosen["privacy_score"]
    key = np.stack([lo, mem, priv], axis=1)
    # Sorted by (lo, mem, privacy score), each descending.
    assert all(tuple(key[i]) >= tuple(key[i + 1]) for i in range(len(key) - 1))
    every = sb.pilot_selection(pilot, sb.BudgetSettings(select="all"))
    assert every["indices"].tolist() == list(range(600)) and every["top"] is None
    by_privacy = sb.pilot_selection(pilot, sb.BudgetSettings(select="privacy_score", top=10))
    per = by_privacy["per_example"]["privacy_score"]
    assert set(by_privacy["indices"]) == set(np.argsort(-per, kind="stable")[:10])
    # The prediction for the memorized selection is a few models, for all many more.
    pred = chosen["prediction"]
    assert pred["selected"]["per_side"] < 2 and pred["all"]["per_side"] > 50


def _check(k, tpr, interval):
    return {
        "num_models": k,
        "stopping": {"tpr_at_fpr": {"0.01": tpr}, "ci": {"tpr_at_fpr": {"0.01": interval}}},
    }


def test_stop_decision_needs_the_target_and_a_stable_interval():
    s = sb.BudgetSettings(target_tpr=0.5, tolerance=0.05, max_models=64)
    first = sb.stop_decision(None, _check(16, 0.9, [0.8, 1.0]), s)
    assert not first["stop"] and first["reached"] and first["moved"] is None
    moved = sb.stop_decision(_check(16, 0.9, [0.8, 1.0]), _check(24, 0.9, [0.7, 1.0]), s)
    assert not moved["stop"] and moved["moved"] == pytest.approx(0.1)
    stable = sb.stop_decision(_check(16, 0.9, [0.8, 1.0]), _check(24, 0.88, [0.76, 0.99]), s)
    assert stable["stop"] and stable["reason"] == "target_reached"
    low = sb.stop_decision(_check(16, 0.4, [0.3, 0.5]), _check(24, 0.4, [0.3, 0.5]), s)
    assert not low["stop"] and low["stable"] and not low["reached"]
    undefined = sb.stop_decision(_check(16, 0.9, None), _check(24, 0.9, [0.8, 1.0]), s)
    assert not undefined["stable"] and not undefined["stop"]
    last = sb.stop_decision(_check(56, 0.4, [0.3, 0.5]), _check(64, 0.4, [0.1, 0.9]), s)
    assert last["stop"] and last["reason"] == "max_models"
    zero = sb.BudgetSettings(target_tpr=0.0, max_models=64)  # stability alone
    assert sb.stop_decision(_check(16, 0.0, [0.0, 0.1]), _check(24, 0.0, [0.0, 0.12]), zero)["stop"]


def test_settings_errors_name_the_setting():
    for kwargs, match in [
        (dict(pilot_models=6 + 1), "--pilot_models"),
        (dict(step_models=6), "--step_models"),
        (dict(max_models=12), "--max_models"),
        (dict(select="loss"), "--select"),
        (dict(at_fpr=0.0), "--at_fpr"),
        (dict(target_tpr=1.5), "--target_tpr"),
        (dict(tolerance=-0.1), "--stop_tolerance"),
    ]:
        with pytest.raises(ValueError, match=match):
            sb.BudgetSettings(**kwargs).validate()
    with pytest.raises(ValueError, match="--top=700 exceeds the 600"):
        sb.BudgetSettings(top=700).validate(600)


def test_adaptive_audit_stops_early_on_memorized_examples_and_keeps_the_tpr():
    full, memorized = _planted()
    grown = []

    def grow(k):
        grown.append(k)
        return _grow(full)(k)

    settings = sb.BudgetSettings(top=30, max_models=64, num_bootstrap=100)
    result = sb.adaptive_audit(grow, settings, compare_full=64)
    assert result["stop_reason"] == "target_reached" and result["models_used"] < 64
    assert grown[: len(result["checks"]) + 1] == [8, *range(16, result["models_used"] + 1, 8)]
    assert grown[-1] == 64
    stop = result["checks"][-1]
    kept = stop["selected"]["tpr_at_fpr"]["0.01"]
    lo, hi = result["full"]["selected"]["ci"]["tpr_at_fpr"]["0.01"]
    full_tpr = result["full"]["selected"]["tpr_at_fpr"]["0.01"]
    assert kept >= 0.9 and abs(kept - full_tpr) < 0.05 and hi >= lo
    # The whole pool is barely attackable: the selection is what makes the audit cheap.
    assert result["full"]["all"]["tpr_at_fpr"]["0.01"] < 0.2
    assert result["realised_full"]["selected"]["per_side"] <= 2
    assert result["selection"]["prediction"]["selected"]["models"] <= 8
    # Deterministic: the same inputs give the same decisions (what resuming relies on).
    again = sb.adaptive_audit(_grow(full), settings, compare_full=64)
    assert [c["decision"] for c in again["checks"]] == [c["decision"] for c in result["checks"]]


def test_stopping_rule_on_null_data_does_not_report_tpr_above_chance():
    """Outputs without membership signal, a target TPR low enough to be hit by chance: the
    stopping targets' TPR at the stop is inflated (that is what stopping on it selects), the
    reported one, from other targets, stays at chance."""
    at_fpr, reported, stopping_at_stop = 0.01, [], []
    for seed in range(20):
        logits, labels, _ = null_logits(32, 400, seed=seed)
        keep = membership.paired_keep_mask(seed, 32, 400)
        sig = mz.memorization_signals(logits, labels)
        settings = sb.BudgetSettings(
            target_tpr=0.02,
            at_fpr=at_fpr,
            step_models=4,
            max_models=32,
            top=100,
            num_bootstrap=50,
            seed=seed,
        )
        prefix = sb.Prefix(sig.phi, sig.correct, keep)
        result = sb.adaptive_audit(_grow(prefix), settings, measure_realised=False)
        stop = result["checks"][-1]
        reported.append(stop["selected"]["tpr_at_fpr"][str(at_fpr)])
        if result["stop_reason"] == "target_reached":
            stopping_at_stop.append(stop["decision"]["tpr"])
    reported = np.array(reported)
    bound = at_fpr + 3 * reported.std(ddof=1) / np.sqrt(reported.size)
    assert reported.mean() <= bound
    # The rule did stop early by chance, and reporting its own input would be caught.
    assert len(stopping_at_stop) >= 4
    assert np.mean(stopping_at_stop) > bound


# -- The binary ----------------------------------------------------------------------------

FLAGS = [
    "--max_train=120",
    "--arch=cnn16",
    "--epochs=1",
    "--batch_size=32",
    "--pilot_models=4",
    "--step_models=4",
    "--max_models=12",
    "--top=20",
    "--compare_full=12",
    "--num_bootstrap=20",
]


def _result(workdir):
    return json.loads((workdir / "results" / "budget.json").read_text())


@pytest.fixture(scope="module")
def budget_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("budget")
    proc = run_binary("budget", f"--workdir={workdir}", *FLAGS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return workdir, proc


def test_budget_binary_end_to_end(budget_run):
    workdir, proc = budget_run
    result = _result(workdir)
    assert result["complete"] and result["full_models"] == 12
    assert result["models_used"] in (8, 12) and [c["num_models"] for c in result["checks"]] in (
        [8],
        [8, 12],
    )
    for check in result["checks"]:
        for key in ("stopping", "selected", "all"):
            assert set(check[key]["tpr_at_fpr"]) == {"0.01", "0.001"}
            assert check[key]["ci"]["auc"] is not None
        assert check["selected"]["num_examples"] == 20 and check["all"]["num_examples"] == 120
    assert len(result["selection"]["indices"]) == 20
    assert (workdir / "results" / "budget.png").stat().st_size > 1000
    assert "# Adaptive shadow-model budget" in (workdir / "results" / "budget.md").read_text()
    assert "## Against the full budget" in proc.stdout
    from lira_jax import store as store_lib

    store = store_lib.open_store(workdir / "store", complete=True)
    assert store.num_models == 12 and store.config["keep_rule"] == "pairs"
    # Again: nothing is trained, the same result.
    again = run_binary("budget", f"--workdir={workdir}", *FLAGS)
    assert again.returncode == 0 and "nothing to train" in again.stderr
    assert _result(workdir) == result


def test_budget_binary_resumes_after_a_kill_to_the_same_result(budget_run, tmp_path):
    reference = _result(budget_run[0])
    killed = run_python(
        "-m",
        "experiments.budget",
        f"--workdir={tmp_path}",
        *FLAGS,
        LIRA_JAX_FAILPOINT="block_recorded@2",
    )
    assert killed.returncode == -9
    assert not _result(tmp_path)["complete"]  # the pilot's part was written
    resumed = run_binary("budget", f"--workdir={tmp_path}", *FLAGS)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _result(tmp_path) == reference


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--num_models=16"], "use --max_models"),
        (["--keep_rule=balanced"], "--keep_rule=pairs"),
        (["--step_models=6"], "--step_models=6 must be a multiple of 4"),
        (["--top=500"], "--top=500 exceeds the 120 examples"),
    ],
)
def test_budget_bad_input_is_one_clear_line(tmp_path, flags, message):
    proc = run_binary("budget", f"--workdir={tmp_path / 'run'}", *FLAGS, *flags)
    assert proc.returncode == 1, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last and "Traceback" not in proc.stderr
    assert not (tmp_path / "run" / "store").exists()  # refused before anything is written


def test_budget_refuses_configs_it_cannot_grow(tmp_path):
    settings = sb.BudgetSettings(pilot_models=4, step_models=4, max_models=12, top=20)
    paired = train_shadows.make_config("digits", **TINY, num_models=12, keep_rule="pairs")
    for config, kwargs, match in [
        (train_shadows.make_config("digits", **TINY, num_models=12), {}, "keep_rule='pairs'"),
        ({**paired, "num_models": 16}, {}, "num_models = max_models"),
        (paired, {"compare_full": 16}, "exceeds --max_models=12"),
        (paired, {"compare_full": 7}, "must be even and >= --pilot_models"),
        ({**paired, "pkeep": 0.7}, {}, "needs pkeep=0.5"),
    ]:
        with pytest.raises(ValueError, match=match):
            budget_lib.budget(config, tmp_path, settings, log=_quiet, **kwargs)
    assert not (tmp_path / "store").exists()

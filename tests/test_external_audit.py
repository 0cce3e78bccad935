"""Auditing what lira_jax did not train: a user's data (npz), model code (module:Name), the
exported queries, and a scikit-learn target's outputs against flax shadows."""

import hashlib
import json
import textwrap

import jax
import numpy as np
import pytest
import scipy.special
import scipy.stats

from experiments import audit as audit_bin
from experiments import export_queries as export_bin
from experiments import train_shadows
from lira_jax import models
from lira_jax import store as store_lib
from lira_jax.attacks import ATTACKS, external
from lira_jax.data import DatasetError, datasets, from_arrays, load_dataset
from lira_jax.store import exchange
from lira_jax.train import load_params
from tests.binaries import REPO, run_binary, run_python
from tests.test_null_calibration import clustered_auc_and_se


def _quiet(_msg):
    pass


def _digits_arrays(n_train=300, n_test=100):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images * 16).clip(0, 255).astype(np.uint8)[..., None]
    y = bunch.target.astype(np.int64)
    return x[:n_train], y[:n_train], x[n_train : n_train + n_test], y[n_train : n_train + n_test]


# --- your own data -------------------------------------------------------------------


def test_from_arrays_and_npz_give_the_same_pool_as_a_registry_dataset(tmp_path):
    x, y, xt, yt = _digits_arrays()
    path = tmp_path / "d.npz"
    np.savez(path, x_train=x, y_train=y, x_test=xt, y_test=yt)
    raw = datasets.load_raw(f"npz:{path}")
    assert raw.source_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    np.testing.assert_array_equal(raw.x_train, (x / 255.0).astype(np.float32))
    assert raw.num_classes == 10 and not raw.mirror_ok and raw.name == f"npz:{path}"
    mine = from_arrays(x, y, xt, yt)
    np.testing.assert_array_equal(mine.x_train, raw.x_train)
    # The same standardisation and max_train as every registry dataset.
    pool = load_dataset(f"npz:{path}", max_train=200)
    assert pool.x_train.shape == (200, 8, 8, 1)
    np.testing.assert_allclose(pool.x_train.mean(), 0.0, atol=1e-5)
    np.testing.assert_allclose(pool.x_train.std(), 1.0, atol=1e-3)
    # Tabular arrays, optional num_classes and mirror_ok.
    np.savez(
        tmp_path / "t.npz",
        x_train=np.random.default_rng(0).normal(size=(50, 4)),
        y_train=np.arange(50) % 3,
        x_test=np.ones((5, 4)),
        y_test=np.zeros(5, int),
        num_classes=np.array(4),
    )
    tab = datasets.load_raw(f"npz:{tmp_path / 't.npz'}")
    assert tab.tabular and tab.num_classes == 4


@pytest.mark.parametrize(
    "change,message",
    [
        (dict(drop="y_test"), r"lacks \['y_test'\]"),
        (dict(y_train=np.zeros(299, int)), r"y_train has shape \(299,\) but x_train has 300"),
        (dict(y_train=np.full(300, 10), num_classes=np.array(10)), r"outside \[0, num_classes=10"),
        (dict(y_train=np.full(300, -1)), r"outside \[0, num_classes"),
        (dict(x_train=np.full((300, 8, 8, 1), np.nan)), r"NaN or infinite"),
        (dict(x_train=np.zeros((300, 8, 8)), x_test=np.zeros((100, 8, 8))), r"rank 3"),
        (dict(x_test=np.zeros((0, 8, 8, 1), np.uint8), y_test=np.zeros(0, int)), r"empty"),
        (dict(y_train=np.zeros(300)), r"must be integers"),
        (dict(x_test=np.zeros((100, 9, 9, 1), np.uint8)), r"same example shape"),
        (dict(num_classes=np.array([3, 4])), r"must be a scalar"),
        (dict(num_classes=np.array(5)), r"outside \[0, num_classes=5\)"),
    ],
)
def test_every_bad_npz_gets_one_clear_error(tmp_path, change, message):
    x, y, xt, yt = _digits_arrays()
    arrays = dict(x_train=x, y_train=y, x_test=xt, y_test=yt)
    drop = change.pop("drop", None)
    arrays.update(change)
    arrays.pop(drop, None)
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DatasetError, match=message):
        datasets.load_raw(f"npz:{path}")
    np.save(tmp_path / "single.npy", x)
    with pytest.raises(DatasetError, match="single array, not an .npz"):
        datasets.load_raw(f"npz:{tmp_path / 'single.npy'}")
    with pytest.raises(DatasetError, match="no file"):
        datasets.load_raw(f"npz:{tmp_path / 'missing.npz'}")


def test_a_store_refuses_a_changed_npz_file(tmp_path):
    x, y, xt, yt = _digits_arrays()
    path = tmp_path / "d.npz"
    np.savez(path, x_train=x, y_train=y, x_test=xt, y_test=yt)
    config = train_shadows.make_config(
        f"npz:{path}", arch="mlp", num_models=2, epochs=1, batch_size=64
    )
    store = train_shadows.train_shadows(config, tmp_path / "run", log=_quiet)
    assert store.config["dataset"] == f"npz:{path}"
    assert store.config["dataset_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    y2 = y.copy()
    y2[0] = (y2[0] + 1) % 10
    np.savez(path, x_train=x, y_train=y2, x_test=xt, y_test=yt)
    with pytest.raises(DatasetError, match="changed since the store"):
        train_shadows.train_shadows(config, tmp_path / "run", log=_quiet)
    with pytest.raises(DatasetError, match="changed since the store"):
        export_bin.export_queries(tmp_path / "run", log=_quiet)


# --- your own model code --------------------------------------------------------------

_USER_MODULE = textwrap.dedent(
    """
    import flax.linen as nn

    class TwoLayer(nn.Module):
        num_classes: int
        hidden: int = 32

        @nn.compact
        def __call__(self, x, penultimate=False):
            h = nn.relu(nn.Dense(self.hidden)(x.reshape(x.shape[0], -1)))
            return h if penultimate else nn.Dense(self.num_classes)(h)

    def factory(num_classes):
        return TwoLayer(num_classes=num_classes, hidden=16)

    class WithBatchNorm(nn.Module):
        num_classes: int

        @nn.compact
        def __call__(self, x, penultimate=False):
            h = nn.BatchNorm(use_running_average=False)(x.reshape(x.shape[0], -1))
            return nn.Dense(self.num_classes)(h)

    class WrongShape(nn.Module):
        num_classes: int

        @nn.compact
        def __call__(self, x, penultimate=False):
            return nn.Dense(self.num_classes + 1)(x.reshape(x.shape[0], -1))

    class NoPenultimate(nn.Module):
        num_classes: int

        @nn.compact
        def __call__(self, x):
            return nn.Dense(self.num_classes)(x.reshape(x.shape[0], -1))
    """
)


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_models.py").write_text(_USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    import sys

    sys.modules.pop("my_models", None)


def test_user_module_by_import_path_and_its_contract(user_module, tmp_path):
    model = models.get_model("my_models:TwoLayer", 10)
    assert model.hidden == 32 and model.num_classes == 10
    assert models.get_model("my_models:factory", 7).hidden == 16
    models.check_model(model, (8, 8, 1), 10, "my_models:TwoLayer")
    cases = {
        "my_models:WithBatchNorm": r"mutable collection\(s\) \['batch_stats'\]",
        "my_models:WrongShape": r"returned shape \(2, 11\); logits must be",
        "my_models:NoPenultimate": r"does not take penultimate",
    }
    for arch, message in cases.items():
        with pytest.raises(ValueError, match=message):
            models.check_model(models.get_model(arch, 10), (8, 8, 1), 10, arch)
        # Refused by the run before anything is written.
        config = train_shadows.make_config("digits", arch=arch, num_models=2, epochs=1)
        with pytest.raises(ValueError, match=message):
            train_shadows.train_shadows(config, tmp_path / arch.replace(":", "_"), log=_quiet)
        assert not (tmp_path / arch.replace(":", "_") / "store").exists()
    with pytest.raises(ValueError, match="cannot import module 'no_such_pkg.mod'"):
        models.get_model("no_such_pkg.mod:X", 10)
    with pytest.raises(ValueError, match=r"has no attribute 'Nope'.*TwoLayer"):
        models.get_model("my_models:Nope", 10)


def test_wide_resnets_by_name_at_a_tiny_size(tmp_path):
    # WRN-16-4 and WRN-28-2 have the papers' sizes (2.7 M and 1.5 M parameters on CIFAR).
    for arch, expected in (("wrn16_4", 2_748_890), ("wrn28_2", 1_467_610)):
        model = models.get_model(arch, 10, "patches")
        shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jax.numpy.zeros((1, 32, 32, 3)))
        assert sum(np.prod(p.shape) for p in jax.tree.leaves(shapes)) == expected
        models.check_model(model, (32, 32, 3), 10, arch)
    # The strided convolution of both lowerings is PyTorch's Conv2d(padding=1, stride=2).
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 9, 7, 3))
    for k in (1, 3):
        patches = models.Conv2D(4, kernel_size=k, impl="patches", stride=2)
        params = patches.init(jax.random.PRNGKey(2), x)
        full = models.Conv2D(4, kernel_size=k, impl="lax").apply(params, x)
        np.testing.assert_allclose(patches.apply(params, x), full[:, ::2, ::2], atol=1e-5)
        lax = models.Conv2D(4, kernel_size=k, impl="lax", stride=2)
        np.testing.assert_allclose(lax.apply(params, x), full[:, ::2, ::2], atol=1e-5)
    config = train_shadows.make_config(
        "digits",
        max_train=48,
        arch="wrn16_4",
        num_models=2,
        epochs=1,
        batch_size=16,
        queries="identity",
    )
    store = train_shadows.train_shadows(config, tmp_path, log=_quiet)
    logits = store.read_logits()
    assert logits.shape == (2, 48, 1, 10) and np.isfinite(logits).all()
    assert store.config["arch"] == "wrn16_4"


def test_custom_module_on_an_npz_file_end_to_end_as_binaries(tmp_path):
    # The user's module and data, as a new user would run them: three binaries.
    (tmp_path / "my_models.py").write_text(_USER_MODULE)
    x, y, xt, yt = _digits_arrays(240, 60)
    np.savez(tmp_path / "mine.npz", x_train=x, y_train=y, x_test=xt, y_test=yt)
    env = {"PYTHONPATH": f"{REPO}:{tmp_path}"}
    run = tmp_path / "run"
    common = [f"--workdir={run}", f"--dataset=npz:{tmp_path / 'mine.npz'}"]
    proc = run_python(
        "-m",
        "experiments.train_shadows",
        *common,
        "--arch=my_models:TwoLayer",
        "--num_models=8",
        "--epochs=3",
        "--batch_size=32",
        **env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    store = store_lib.open_store(run / "store", complete=True)
    assert store.config["arch"] == "my_models:TwoLayer"
    # Reopening with another model is refused (the import path is part of the config).
    again = run_python(
        "-m",
        "experiments.train_shadows",
        *common,
        "--arch=my_models:factory",
        "--num_models=8",
        "--epochs=3",
        "--batch_size=32",
        **env,
    )
    assert again.returncode == 1 and "arch" in again.stderr and "Traceback" not in again.stderr
    proc = run_python("-m", "experiments.export_queries", f"--workdir={run}", **env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    export = exchange.read_query_export(run / "queries")
    assert export.inputs.shape == (240, 5, 8, 8, 1)
    # A "target": softmax of random scores, with a random half as its members.
    rng = np.random.default_rng(0)
    probs = scipy.special.softmax(rng.normal(size=(240, 5, 10)), axis=-1).astype(np.float32)
    np.save(tmp_path / "target.npy", probs)
    np.save(tmp_path / "keep.npy", rng.random(240) < 0.5)
    before = {p: p.read_bytes() for p in (run / "store").rglob("*") if p.is_file()}
    args = [f"--workdir={run}", f"--target_logits={tmp_path / 'target.npy'}"]
    bad = run_python("-m", "experiments.audit", *args, **env)  # probabilities as logits
    assert bad.returncode == 1 and "--target_format=probs" in bad.stderr.splitlines()[-1]
    proc = run_python(
        "-m",
        "experiments.audit",
        *args,
        "--target_format=probs",
        f"--target_keep={tmp_path / 'keep.npy'}",
        "--num_bootstrap=10",
        **env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = run / "results" / "audit_target"
    summary = json.loads((out / "audit.json").read_text())
    assert set(summary["attacks"]) == set(ATTACKS)
    assert "| lira_online |" in proc.stdout
    for name in ("scores.csv", "ranking.csv", "audit.md", "roc.png", "scores.png", "exposed.png"):
        assert (out / name).stat().st_size > 100, name
    after = {p: p.read_bytes() for p in (run / "store").rglob("*") if p.is_file()}
    assert after == before  # nothing in the store was touched


# --- the exported queries are what the shadows saw --------------------------------------


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """16 mlp shadows on digits with saved parameters, and the store's query export."""
    run = tmp_path_factory.mktemp("digits_mlp")
    config = train_shadows.make_config(
        "digits", arch="mlp", num_models=16, epochs=15, queries="ring1+rot2"
    )
    store = train_shadows.train_shadows(config, run, save_params=True, log=_quiet)
    export_bin.export_queries(run, data_dir=None, chunk_examples=400, log=_quiet)
    return run, store


def test_export_is_exactly_what_the_shadows_were_queried_with(digits_run, tmp_path):
    run, store = digits_run
    export = exchange.read_query_export(run / "queries")
    n, a = store.num_examples, store.num_queries
    assert export.inputs.shape == (n, a, 8, 8, 1) and export.inputs.dtype == np.float32
    assert export.query_names == list(store.query_names)
    np.testing.assert_array_equal(export.labels, store.labels())
    # Through a shadow's saved parameters, the exported inputs give its stored logits.
    saved = load_params(run, [3])
    params = jax.tree.map(lambda p: p[0], saved.params)
    got = np.asarray(saved.model.apply(params, export.inputs.reshape(n * a, 8, 8, 1)))
    np.testing.assert_allclose(
        got.reshape(n, a, 10), store.read_logits(models=3), rtol=1e-5, atol=1e-5
    )
    # Chunked writing does not change a bit; another store's export is refused there.
    export_bin.export_queries(run, tmp_path / "one", chunk_examples=n, log=_quiet)
    np.testing.assert_array_equal(
        exchange.read_query_export(tmp_path / "one").inputs, export.inputs
    )
    other = tmp_path / "other_run"
    train_shadows.train_shadows(
        train_shadows.make_config("digits", arch="mlp", num_models=2, epochs=1, seed=5),
        other,
        log=_quiet,
    )
    with pytest.raises(store_lib.StoreError, match="query export of another store"):
        export_bin.export_queries(other, tmp_path / "one", log=_quiet)


# --- a real target from another framework -----------------------------------------------


def _phi(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """φ = log p_y − log Σ_{y'≠y} p_y' of probabilities [..., N, A, C] (float64)."""
    p = np.asarray(probs, np.float64)
    onehot = np.eye(p.shape[-1], dtype=bool)[labels][:, None, :]
    p_y = np.where(onehot, p, 0).sum(-1)
    rest = np.where(onehot, 0, p).sum(-1)
    return np.log(p_y + 1e-45) - np.log(rest + 1e-45)


def _independent_lira_online(target_phi, shadow_phi, keep):
    """LiRA online with per-example σ, the target against ALL shadows, example by example."""
    out = np.empty(target_phi.shape[0])
    for n in range(target_phi.shape[0]):
        vin, vout = shadow_phi[keep[:, n], n], shadow_phi[~keep[:, n], n]
        mu_in, mu_out = np.median(vin, 0), np.median(vout, 0)
        sd_in, sd_out = vin.std(0), vout.std(0)
        ll = scipy.stats.norm.logpdf(target_phi[n], mu_in, sd_in) - scipy.stats.norm.logpdf(
            target_phi[n], mu_out, sd_out
        )
        out[n] = ll.mean()
    return out


def _sklearn_target(export, seed: int):
    """An MLPClassifier trained on the identity-query inputs of a random half (its seed);
    returns (predict_proba on every query [N, A, C], its membership [N])."""
    from sklearn.neural_network import MLPClassifier

    n, a = export.inputs.shape[:2]
    keep = np.random.default_rng([seed, 7]).permutation(n) < n // 2
    flat = np.asarray(export.inputs).reshape(n, a, -1)
    clf = MLPClassifier(hidden_layer_sizes=(128,), max_iter=300, random_state=seed)
    clf.fit(flat[keep, 0], export.labels[keep])
    return clf.predict_proba(flat.reshape(n * a, -1)).reshape(n, a, -1), keep


def test_sklearn_target_audit_equals_an_independent_lira(digits_run):
    run, store = digits_run
    export = exchange.read_query_export(run / "queries")
    probs, keep = _sklearn_target(export, seed=1)
    result = external.audit_target(
        store, probs, target_format="probs", target_keep=keep, attacks="all", log=_quiet
    )
    labels = store.labels()
    shadow_probs = scipy.special.softmax(store.read_logits().astype(np.float64), axis=-1)
    want = _independent_lira_online(_phi(probs, labels), _phi(shadow_probs, labels), store.keep())
    np.testing.assert_allclose(result.scores["lira_online"], want, rtol=1e-6, atol=1e-6)
    from lira_jax import metrics

    auc = metrics.auc(*metrics.roc_curve(want, keep))
    assert result.results["lira_online"]["auc"] == pytest.approx(auc, abs=1e-12)
    # The target memorizes more than the shadows: the report says so.
    assert result.recipe["target"]["in"] == 1.0 and result.recipe["mismatch"]
    assert "lira_offline" in result.recipe["warning"]
    # The scores do not depend on the membership given (it only evaluates them).
    blind = external.audit_target(store, probs, target_format="probs", log=_quiet)
    for name, scores in result.scores.items():
        np.testing.assert_array_equal(blind.scores[name], scores)
    assert not blind.curves and "score_quantiles" in blind.results["lira_online"]


def test_a_target_independent_of_the_given_membership_is_null(digits_run):
    run, store = digits_run
    export = exchange.read_query_export(run / "queries")
    probs, _ = _sklearn_target(export, seed=2)
    # Evaluated against a membership it was not trained on: every attack at 0.5.
    keep = np.random.default_rng(99).random(store.num_examples) < 0.5
    result = external.audit_target(
        store, probs, target_format="probs", target_keep=keep, log=_quiet
    )
    units = np.arange(store.num_examples)
    for name, scores in result.scores.items():
        auc, se = clustered_auc_and_se(scores, keep, units)
        assert abs(auc - 0.5) <= 4 * se, (name, auc, se)


def test_bad_target_outputs_each_get_one_error(digits_run):
    _, store = digits_run
    n, a, c = store.num_examples, store.num_queries, store.num_classes
    good = scipy.special.softmax(np.random.default_rng(0).normal(size=(n, a, c)), axis=-1)
    cases = [
        (good[:-1], "probs", r"N \(examples\) is 1499, the store has 1500"),
        (good[:, :2], "probs", r"A \(queries\) is 2"),
        (good[..., :9], "probs", r"C \(classes\) is 9"),
        (np.where(np.arange(c) == 3, np.nan, good), "probs", "NaN or infinite"),
        (good, "logits", "these are probabilities, not logits.*--target_format=probs"),
        (good * 2, "probs", "do not sum to 1"),
        (np.log(good) + 1, "log_probs", "do not exponentiate"),
        (good[:, :, 0], "logits", r"must be \[N, A, C\]"),
        (good.argmax(-1), "logits", "--exposure=labels"),
    ]
    for outputs, fmt, message in cases:
        with pytest.raises(ValueError, match=message):
            external.audit_target(store, outputs, target_format=fmt, log=_quiet)
    for keep, message in (
        (np.ones(n - 1, bool), r"must be \[N\] = \[1500\]"),
        (np.full(n, 2), "other than 0/1"),
        (np.ones(n, bool), "members and non-members"),
    ):
        with pytest.raises(ValueError, match=message):
            external.audit_target(store, good, target_format="probs", target_keep=keep)
    # Labels-only targets: [N, A] predicted labels run the label-only attacks.
    labels_only = external.audit_target(
        store, good.argmax(-1), exposure="labels", target_keep=np.arange(n) % 2 == 0
    )
    assert labels_only.results["lira_online"]["undefined"]
    assert "auc" in labels_only.results["label_only_augmentation_lira"]


def test_recipe_check_warns_only_beyond_the_tolerance():
    correct = np.array([True] * 90 + [False] * 10 + [True] * 80 + [False] * 20)
    keep = np.arange(200) < 100
    near = external.recipe_check(correct, keep, 0.88, 0.82, 0.85)
    assert not near["mismatch"] and near["warning"] is None
    far = external.recipe_check(correct, keep, 0.80, 0.80, 0.80)
    assert far["mismatch"] and far["differences"] == {"in": 0.1, "out": 0.0}
    blind = external.recipe_check(correct, None, 0.9, 0.9, 0.95)
    assert blind["mismatch"] and "pool 0.850" in blind["warning"]


def test_audit_binary_writes_the_ranking_without_keep(digits_run, tmp_path):
    run, store = digits_run
    export = exchange.read_query_export(run / "queries")
    probs, _ = _sklearn_target(export, seed=3)
    np.save(tmp_path / "sk.npy", np.log(probs + 1e-12))  # log-probabilities this time
    proc = run_binary(
        "audit",
        f"--workdir={run}",
        f"--target_logits={tmp_path / 'sk.npy'}",
        "--target_format=log_probs",
        f"--output={tmp_path / 'report'}",
        "--attacks=lira_online,lira_offline,global_threshold",
        "--top_examples=5",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "report" / "audit.json").read_text())
    assert summary["target"]["keep"] is None and len(summary["ranking"]["top"]) == 5
    ranking = np.loadtxt(tmp_path / "report" / "ranking.csv", delimiter=",", skiprows=1)
    assert ranking.shape == (store.num_examples, 4)
    assert np.all(np.diff(ranking[:, 3]) <= 0)  # sorted by lira_online, most exposed first
    assert not (tmp_path / "report" / "roc.png").exists()
    assert "score_quantiles" in summary["attacks"]["lira_online"]


def test_external_targets_benchmark_runs_at_a_tiny_size(tmp_path):
    proc = run_binary(
        "bench.external_targets",
        f"--workdir={tmp_path}",
        "--dataset=digits",
        "--max_train=200",
        "--arch=mlp",
        "--num_models=4",
        "--epochs=2",
        "--frameworks=sklearn,flax",
        "--null_draws=2",
        "--sklearn_max_iter=30",
        "--num_bootstrap=0",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads((tmp_path / "results" / "external_targets.json").read_text())
    assert set(rows["targets"]) == {"sklearn", "flax"}
    for entry in rows["targets"].values():
        assert 0 < entry["audit"]["lira_online"]["auc"] < 1
        assert set(entry["null"]["lira_offline"]) == {"auc_mean", "auc_sd"}
    assert "| sklearn |" in proc.stdout


def test_target_files_in_every_accepted_format(tmp_path):
    import zarr

    outputs = np.random.default_rng(0).normal(size=(6, 2, 3)).astype(np.float32)
    np.save(tmp_path / "a.npy", outputs)
    np.savez(tmp_path / "one.npz", anything=outputs)
    np.savez(tmp_path / "named.npz", outputs=outputs, other=np.zeros(3))
    z3 = zarr.create_array(str(tmp_path / "z3"), shape=outputs.shape, dtype="float32")
    z3[:] = outputs
    z2 = zarr.create_array(
        str(tmp_path / "z2"), shape=outputs.shape, dtype="float32", zarr_format=2
    )
    z2[:] = outputs
    for name in ("a.npy", "one.npz", "named.npz", "z3", "z2"):
        np.testing.assert_array_equal(exchange.read_target_outputs(tmp_path / name), outputs)
    (tmp_path / "plain").mkdir()
    with pytest.raises(store_lib.StoreError, match="not a zarr array"):
        exchange.read_target_outputs(tmp_path / "plain")
    np.save(tmp_path / "k.npy", np.arange(6) % 2 == 0)
    np.savez(tmp_path / "k.npz", keep=np.arange(6) % 2 == 0, extra=np.ones(2))
    for name in ("k.npy", "k.npz"):
        assert exchange.read_target_keep(tmp_path / name).tolist() == [True, False] * 3


def test_audit_refuses_a_store_with_missing_blocks(tmp_path):
    config = train_shadows.make_config(
        "digits", max_train=100, arch="mlp", num_models=4, epochs=1, queries="identity"
    )
    train_shadows.train_shadows(config, tmp_path, model_range="0:2", log=_quiet)
    np.save(tmp_path / "t.npy", np.zeros((100, 1, 10), np.float32))
    with pytest.raises(store_lib.IncompleteStoreError, match="--model_range=2:4"):
        audit_bin.audit(tmp_path, tmp_path / "t.npy", log=_quiet)
    assert not (tmp_path / "results").exists()


def test_export_of_a_store_with_dp_audit_canaries_rebuilds_its_pool(tmp_path):
    # Canaries change the pool's labels (mislabeled) or inputs (ood, blank): the export
    # rebuilds them as training planted them, or the store would refuse it.
    for kind in ("mislabeled", "ood"):
        config = train_shadows.make_config(
            "digits",
            max_train=120,
            arch="mlp",
            num_models=2,
            epochs=1,
            audit_canaries=8,
            audit_canary_kind=kind,
        )
        run = tmp_path / kind
        store = train_shadows.train_shadows(config, run, save_params=True, log=_quiet)
        export_bin.export_queries(run, log=_quiet)
        export = exchange.read_query_export(run / "queries")
        np.testing.assert_array_equal(export.labels, store.labels())
        saved = load_params(run, [0])
        params = jax.tree.map(lambda p: p[0], saved.params)
        n, a = export.inputs.shape[:2]
        got = saved.model.apply(params, np.asarray(export.inputs).reshape(n * a, 8, 8, 1))
        np.testing.assert_allclose(
            np.asarray(got).reshape(n, a, 10), store.read_logits(models=0), atol=1e-5
        )

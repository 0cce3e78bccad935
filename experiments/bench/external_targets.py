r"""Targets from other frameworks audited against flax shadows: how much the audit finds.

    python -m experiments.bench.external_targets --workdir=runs/ext_digits --dataset=digits \
        --arch=mlp --num_models=16
    python -m experiments.bench.external_targets --workdir=runs/ext_fashion \
        --dataset=fashion_mnist_idx --max_train=2000 --arch=mlp --num_models=16
    # -> RUN/results/external_targets.json, .md; prints the table

What a new user does with a model of their own, end to end, once per framework: train the
store's shadows (any `train_shadows` flag), export their queries
(`experiments.export_queries`), train a target on a random half of the pool (drawn with its
own seed, independent of the store's keep mask), run the exported queries through it, and
audit its outputs (`lira_jax.attacks.external.audit_target`). Targets (`--frameworks`):

  * sklearn: scikit-learn's `MLPClassifier` (hidden layers `--sklearn_hidden`, Adam, up to
    `--sklearn_max_iter` iterations, no early stopping): a memorizing target with another
    recipe than the shadows;
  * torch: a PyTorch MLP of the shadows' widths (256, 256), Adam, `--torch_epochs` epochs
    (optional: needs `pip install -e '.[bench]'`; skipped with a note without torch);
  * flax: a model of the store's own architecture and recipe, trained by the engine on the
    target's half with keys no shadow uses: the recipe-matched control.

Each target is audited against its true membership, and against `--null_draws` random
halves independent of it (a null target: every AUC must be 0.5 up to sampling error, about
±0.013 for one draw at N = 2,000; the table gives their mean and standard deviation).
Beside them, the store's own leave-one-model-out numbers (`experiments.attack`) for the
same attacks: what a target trained exactly like the shadows gives.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from absl import app, flags, logging

from experiments import attack as attack_bin
from experiments import export_queries, flagdefs, train_shadows

_FRAMEWORKS = flags.DEFINE_list(
    "frameworks", ["sklearn", "torch", "flax"], "Targets to train: sklearn, torch, flax."
)
_TARGET_SEED = flags.DEFINE_integer("target_seed", 1, "Seed of the targets' halves and training.")
_SKLEARN_HIDDEN = flags.DEFINE_list("sklearn_hidden", ["256", "256"], "MLPClassifier's layers.")
_SKLEARN_MAX_ITER = flags.DEFINE_integer("sklearn_max_iter", 200, "MLPClassifier's max_iter.")
_TORCH_EPOCHS = flags.DEFINE_integer("torch_epochs", 60, "Epochs of the PyTorch target.")
_NULL_DRAWS = flags.DEFINE_integer(
    "null_draws", 5, "Independent random halves each target's null audit is repeated on."
)

ATTACKS = (
    "lira_online",
    "lira_online_fixed_variance",
    "lira_offline",
    "lira_offline_fixed_variance",
    "global_threshold",
    "rmia_online",
)


def _half(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng([seed, 0xE7]).permutation(n) < n // 2


def _sklearn_target(x, y, keep, seed, hidden, max_iter):
    from sklearn.neural_network import MLPClassifier

    n, a = x.shape[:2]
    flat = x.reshape(n, a, -1)
    clf = MLPClassifier(hidden_layer_sizes=hidden, max_iter=max_iter, random_state=seed)
    clf.fit(flat[keep, 0], y[keep])
    return clf.predict_proba(flat.reshape(n * a, -1)).reshape(n, a, -1), "probs"


def _torch_target(x, y, keep, seed, epochs, num_classes):
    import torch

    torch.manual_seed(seed)
    n, a = x.shape[:2]
    flat = torch.tensor(x.reshape(n, a, -1))
    net = torch.nn.Sequential(
        torch.nn.Linear(flat.shape[-1], 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, num_classes),
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    xs, ys = flat[torch.tensor(keep), 0], torch.tensor(y[keep], dtype=torch.long)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(xs.shape[0], generator=gen).split(64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(xs[idx]), ys[idx]).backward()
            opt.step()
    with torch.inference_mode():
        logits = net(flat.reshape(n * a, -1)).reshape(n, a, -1)
    return logits.numpy().astype(np.float64), "logits"


def _flax_target(store, keep, data_dir):
    """A model of the store's architecture and recipe on `keep`, with keys of a model index
    no shadow has, queried like the shadows (the run's own query pass)."""
    from lira_jax.data import augment
    from lira_jax.train import Engine, TrainConfig, query_pass, steps_per_epoch
    from lira_jax.train.pool import load_store_dataset

    config = store.config
    ds = load_store_dataset(config, data_dir)
    train_config = TrainConfig.from_run_config(config, ds.num_classes)
    rows = keep[None]
    engine = Engine(
        train_config, ds.x_train, ds.y_train, steps_per_epoch(store.keep(), config["batch_size"])
    )
    index = np.array([store.num_models + 10_000])  # keys no shadow model uses
    params = engine.train(index, rows)
    queries = augment.query_set(config["queries"], ds.mirror_ok, tabular=ds.tabular)
    res = query_pass(engine.model, params, engine.x, ds.y_train, rows, queries)
    return res.logits[0].astype(np.float64), "logits"


def _row(res: dict) -> dict:
    if res.get("undefined"):
        return {"undefined": res["reason"]}
    return {
        "auc": round(res["auc"], 4),
        "auc_ci": [round(v, 4) for v in res.get("ci", {}).get("auc", [])],
        "tpr_1%": round(res["tpr_at_fpr"]["0.01"], 4),
        "tpr_0.1%": round(res["tpr_at_fpr"]["0.001"], 4),
    }


def run(workdir: Path, log=logging.info) -> dict:
    from lira_jax.attacks import external
    from lira_jax.store import exchange

    t0 = time.perf_counter()
    config = train_shadows.config_from_flags()
    store = train_shadows.train_shadows(config, workdir, **train_shadows.run_kwargs_from_flags())
    t_train = time.perf_counter() - t0
    loo = attack_bin.attack(
        workdir, ",".join(ATTACKS), num_bootstrap=flagdefs.NUM_BOOTSTRAP.value, log=log
    )
    export_queries.export_queries(workdir, data_dir=flagdefs.DATA_DIR.value, log=log)
    export = exchange.read_query_export(workdir / "queries")
    x, y = np.asarray(export.inputs), export.labels
    n = x.shape[0]
    seed = _TARGET_SEED.value
    keep = _half(n, seed)
    null_keeps = [_half(n, seed + 1000 + d) for d in range(_NULL_DRAWS.value)]
    rows = {
        "store": {
            "dataset": config["dataset"],
            "arch": config["arch"],
            "num_models": store.num_models,
            "num_examples": n,
            "train_seconds": round(t_train, 1),
        },
        "leave_one_out": {a: _row(loo[a]) for a in ATTACKS},
        "targets": {},
    }
    makers = {
        "sklearn": lambda: _sklearn_target(
            x, y, keep, seed, tuple(int(h) for h in _SKLEARN_HIDDEN.value), _SKLEARN_MAX_ITER.value
        ),
        "torch": lambda: _torch_target(x, y, keep, seed, _TORCH_EPOCHS.value, store.num_classes),
        "flax": lambda: _flax_target(store, keep, flagdefs.DATA_DIR.value),
    }
    for framework in _FRAMEWORKS.value:
        if framework not in makers:
            raise ValueError(f"--frameworks: unknown {framework!r}; choose from {list(makers)}.")
        t = time.perf_counter()
        try:
            outputs, fmt = makers[framework]()
        except ImportError as e:
            rows["targets"][framework] = {"skipped": f"{e} (pip install -e '.[bench]')"}
            log(f"{framework}: skipped ({e})")
            continue
        t_target = time.perf_counter() - t
        entry = {"train_seconds": round(t_target, 1), "format": fmt}
        t = time.perf_counter()
        result = external.audit_target(
            store,
            outputs,
            target_format=fmt,
            target_keep=keep,
            attacks=list(ATTACKS),
            num_bootstrap=flagdefs.NUM_BOOTSTRAP.value,
        )
        entry["audit"] = {a: _row(result.results[a]) for a in ATTACKS}
        entry["audit_seconds"] = round(time.perf_counter() - t, 1)
        entry["recipe"] = result.recipe
        null_aucs = {a: [] for a in ATTACKS}
        for truth in null_keeps:
            null = external.audit_target(
                store, outputs, target_format=fmt, target_keep=truth, attacks=list(ATTACKS)
            )
            for a in ATTACKS:
                null_aucs[a].append(null.results[a].get("auc", float("nan")))
        entry["null"] = {
            a: {"auc_mean": round(float(np.mean(v)), 4), "auc_sd": round(float(np.std(v)), 4)}
            for a, v in null_aucs.items()
        }
        rows["targets"][framework] = entry
        log(f"{framework}: {json.dumps(entry['audit']['lira_online'])}")
    out = workdir / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "external_targets.json").write_text(json.dumps(rows, indent=2) + "\n")
    table = markdown(rows)
    (out / "external_targets.md").write_text(table)
    print(table)
    return rows


def markdown(rows: dict) -> str:
    s = rows["store"]
    lines = [
        f"# External targets against {s['num_models']} {s['arch']} shadows on {s['dataset']} "
        f"(N = {s['num_examples']})",
        "",
        "| target | acc members / non-members (shadows) | attack | AUC | TPR@1% | TPR@0.1% "
        "| null AUC (mean ± sd) |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for a in ATTACKS:
        r = rows["leave_one_out"][a]
        if "undefined" in r:
            lines.append(f"| store leave-one-out | | {a} | undefined: {r['undefined']} | | | |")
            continue
        lines.append(
            f"| store leave-one-out | | {a} | {r['auc']:.3f} | {100 * r['tpr_1%']:.2f}% | "
            f"{100 * r['tpr_0.1%']:.2f}% | |"
        )
    for framework, entry in rows["targets"].items():
        if "skipped" in entry:
            lines.append(f"| {framework} | skipped: {entry['skipped']} | | | | | |")
            continue
        rc = entry["recipe"]
        acc = (
            f"{rc['target']['in']:.3f} / {rc['target']['out']:.3f} "
            f"({rc['shadows']['in']:.3f} / {rc['shadows']['out']:.3f})"
        )
        for a in ATTACKS:
            r, z = entry["audit"][a], entry["null"][a]
            if "undefined" in r:
                lines.append(f"| {framework} | {acc} | {a} | undefined | | | |")
                continue
            lines.append(
                f"| {framework} | {acc} | {a} | {r['auc']:.3f} | {100 * r['tpr_1%']:.2f}% | "
                f"{100 * r['tpr_0.1%']:.2f}% | {z['auc_mean']:.3f} ± {z['auc_sd']:.3f} |"
            )
            acc = ""
    return "\n".join(lines) + "\n"


def run_from_flags() -> None:
    run(Path(flagdefs.WORKDIR.value))


main = flagdefs.main_for(run_from_flags, trains=True)


if __name__ == "__main__":
    app.run(main)

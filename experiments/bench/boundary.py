r"""Benchmark of the label-only boundary attack (batched HopSkipJump) on a trained run.

    python -m experiments.train_shadows --workdir=runs/digits --save_params
    python -m experiments.bench.boundary --workdir=runs/digits
    # 8 targets x all 1,500 digits examples; prints seconds, label queries per second and
    # per example, the AUC with both thresholds, and ART's per-example budget for comparison.

Each of the first --num_targets models is attacked on the first --num_examples examples
of its pool (all by default) with its true labels; the shadow-calibrated threshold of a
target uses the other targets' distances, the unsupervised one --num_random random inputs.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from absl import app, flags

from experiments import flagdefs

_DATA_DIR = flagdefs.DATA_DIR
_NUM_TARGETS = flagdefs.NUM_TARGETS  # models attacked: 0 .. T-1 (this binary's default 8)
_NUM_EXAMPLES = flagdefs.NUM_EXAMPLES  # the first N pool examples (default: all)
_NUM_RANDOM = flags.DEFINE_integer("num_random", 100, "Random inputs for Li & Zhang's threshold.")
_PERCENTILE = flags.DEFINE_float("percentile", 50.0, "Percentile of random-input distances.")
_SEED = flagdefs.ATTACK_SEED


def run_from_flags() -> None:
    from lira_jax import metrics
    from lira_jax import store as store_lib
    from lira_jax.attacks import label_only
    from lira_jax.data import datasets
    from lira_jax.train import load_params

    config = flagdefs.hsj_config()
    workdir = Path(flagdefs.WORKDIR.value)
    store = store_lib.open_store(workdir / "store")
    targets = np.arange(_NUM_TARGETS.value)
    saved = load_params(workdir, targets)
    ds = datasets.load_dataset(store.config["dataset"], _DATA_DIR.value, store.config["max_train"])
    n = _NUM_EXAMPLES.value or ds.x_train.shape[0]
    x, y = ds.x_train[:n], ds.y_train[:n]
    lo, hi = label_only.clip_range(ds.x_train)
    d = int(np.prod(x.shape[1:]))
    common = dict(clip_min=lo, clip_max=hi, seed=_SEED.value, model_indices=targets)

    t0 = time.perf_counter()  # compile: one tiny budget (budgets share the compilation)
    tiny = config.__class__(**{**config.__dict__, "iterations": 1, "init_size": 1})
    label_only.hsj_distances(saved.model, saved.params, x[:1], y[:1], config=tiny, **common)
    t_compile = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = label_only.hsj_distances(saved.model, saved.params, x, y, config=config, **common)
    t_attack = time.perf_counter() - t0
    t0 = time.perf_counter()
    rand_x = label_only.random_inputs(_NUM_RANDOM.value, x.shape[1:], lo, hi, _SEED.value)
    rand = label_only.hsj_distances(
        saved.model, saved.params, rand_x, None, config=config, **common
    )
    t_random = time.perf_counter() - t0

    keep = store.keep()
    bank = label_only.LabelBank(keep[:, :n], np.zeros((keep.shape[0], n, 1), np.int32), y)
    queries = int(res.queries.sum())
    print(
        f"boundary attack: {len(targets)} targets x {n} examples ({store.config['dataset']}, "
        f"{store.config['arch']}, d={d}), budget {config}"
    )
    print(
        f"compile {t_compile:.1f} s; attack {t_attack:.1f} s ({t_attack / 60:.1f} min); "
        f"random-input calibration ({_NUM_RANDOM.value} inputs) {t_random:.1f} s"
    )
    print(
        f"label queries: {queries:,} in total, {queries / t_attack:,.0f} queries/s; per example "
        f"mean {res.queries.mean():.0f}, max {res.queries.max()}, budget "
        f"{config.queries_per_example(d)}; {t_attack / res.queries.size * 1e3:.2f} ms per "
        f"(model, example); start not found: {int(res.init_failed.sum())}"
    )
    art = label_only.HSJConfig(iterations=50, max_evals=10_000, init_evals=100, init_size=100)
    art_queries = art.queries_per_example(d)
    art_hours = len(targets) * n * art_queries / (queries / t_attack) / 3600
    print(
        f"ART's defaults (50 iterations, max_eval 10,000, init_eval 100, init_size 100) cap one "
        f"example at {art_queries:,} queries (the evaluation count grows as 100*sqrt(t+1) and "
        f"never reaches 10,000 in 50 iterations; 50 x 10,000 = 500,000 is not reached): "
        f"{art_queries / res.queries.mean():.1f}x this run's mean; at this rate "
        f"{len(targets)} x {n} examples would take ~{art_hours:.1f} h"
    )
    for kind in ("shadow", "random"):
        out = label_only.boundary_attack(
            bank, targets, distances=res, random_distances=rand, threshold=kind, seed=_SEED.value
        )
        truth = keep[targets, :n]
        fpr, tpr = metrics.roc_curve(out.scores.ravel(), truth.ravel())
        op = metrics.operating_point((out.scores >= out.threshold).ravel(), truth.ravel())
        print(
            f"threshold={kind}: AUC {metrics.auc(fpr, tpr):.4f}, TPR@1%FPR "
            f"{metrics.tpr_at_fpr(fpr, tpr, 0.01):.4f}; operating point TPR {op['tpr']:.3f} FPR "
            f"{op['fpr']:.3f} balanced accuracy {op['balanced_accuracy']:.3f} (threshold mean "
            f"{float(np.mean(out.threshold)):.3f})"
        )
    correct = (res.distances > 0).mean()
    print(f"fraction with distance > 0 (correctly labelled): {correct:.3f}")


main = flagdefs.main_for(run_from_flags, trains=True)


if __name__ == "__main__":
    flagdefs.set_defaults(num_targets=8)
    app.run(main)

r"""Per-example memorization (Feldman & Zhang), privacy scores and singletons of a run.

    python -m experiments.memorization --workdir=runs/digits
    # -> runs/digits/results/memorization.csv (one row per training example),
    #    memorization.json (bucket counts, singletons, Spearman), two PNG plots;
    #    with a store trained with --store_test_logits also influence.npy [train, test].

Reads only the store. The estimates are differences of IN and OUT means over the store's
models, so their noise shrinks like 1/sqrt(models): with 64 models and pkeep 0.5, one
example's 0/1 memorization has a standard error of up to ~0.18 (Feldman & Zhang train
thousands of models on 70% subsets: use --pkeep=0.7 in train_shadows for that setup).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from absl import app, flags, logging

from experiments import flagdefs
from lira_jax import memorization as mem_lib
from lira_jax import signals
from lira_jax import store as store_lib
from lira_jax.report import curves
from lira_jax.sample_complexity import memorization_privacy_spearman, to_jsonable

_THRESHOLDS = flags.DEFINE_list(
    "mem_thresholds", ["0.1", "0.5"], "Memorization bucket edges (ascending)."
)
_SINGLETON = flags.DEFINE_float(
    "singleton_threshold", 0.4, "Examples with memorization >= this are 'singletons'."
)
_PRIVACY_QUERIES = flags.DEFINE_enum(
    "privacy_queries",
    "identity",
    ["identity", "mean"],
    "Privacy score on the identity query's φ, or on φ averaged over the queries.",
)


def parse_thresholds(values) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in values)
    except ValueError:
        raise ValueError(f"--mem_thresholds={values} must be numbers, e.g. 0.1,0.5.") from None


def memorization_report(
    workdir: str | Path,
    thresholds: tuple[float, ...] = mem_lib.DEFAULT_BUCKET_THRESHOLDS,
    singleton_threshold: float = 0.4,
    privacy_queries: str = "identity",
    log: Callable[[str], None] = logging.info,
) -> dict:
    """Computes and writes the per-example estimates of `workdir/store`; returns the summary."""
    workdir = Path(workdir)
    store = store_lib.open_store(workdir / "store", complete=True)
    keep, labels = store.keep(), store.labels()
    log(f"Reading {store}")
    sig = mem_lib.memorization_signals(store.read_logits(), labels)
    table = mem_lib.per_example_table(
        keep, labels, sig, queries=privacy_queries, thresholds=thresholds
    )
    names = mem_lib.bucket_names(thresholds)
    mem, score = table["memorization"], table["privacy_score"]
    counts = np.bincount(table["bucket"], minlength=len(names))
    summary = {
        "num_models": store.num_models,
        "num_examples": store.num_examples,
        "thresholds": list(thresholds),
        "bucket_counts": {n: int(c) for n, c in zip(names, counts, strict=True)},
        "mean_memorization": float(mem.mean()),
        "mean_soft_memorization": float(table["soft_memorization"].mean()),
        "singletons": mem_lib.select_singletons(mem, singleton_threshold),
        "spearman_memorization_privacy_score": memorization_privacy_spearman(mem, score),
        "privacy_queries": privacy_queries,
    }
    out = workdir / "results"
    store_lib.write_text_atomic(out / "memorization.csv", mem_lib.format_csv(table))
    if store.num_test_examples:
        test_correct = signals.correctness(
            store.read_test_logits(), store.test_labels(), example_axis=1
        )
        infl = mem_lib.influence(keep, test_correct)
        np.save(out / "influence.npy", infl.astype(np.float32))
        top = np.argsort(infl, axis=None)[::-1][:10]
        summary["top_influence"] = [
            {"train": int(i), "test": int(j), "influence": float(infl[i, j])}
            for i, j in zip(*np.unravel_index(top, infl.shape), strict=True)
        ]
    store_lib.write_text_atomic(
        out / "memorization.json", json.dumps(to_jsonable(summary), indent=2) + "\n"
    )
    curves.plot_memorization_histogram(
        mem,
        out / "memorization_hist.png",
        soft_mem=table["soft_memorization"],
        thresholds=thresholds,
    )
    curves.plot_privacy_vs_memorization(
        mem,
        score,
        out / "privacy_vs_memorization.png",
        groups=table["bucket"],
        group_names=names,
        spearman=summary["spearman_memorization_privacy_score"],
    )
    rho = summary["spearman_memorization_privacy_score"]
    print(
        f"memorization buckets: {summary['bucket_counts']}; singletons (mem >= "
        f"{singleton_threshold}): {summary['singletons']['num_selected']}; Spearman(mem, "
        f"privacy score) = {rho['rho']:.3f} (p = {rho['pvalue']:.2g})"
    )
    log(f"Wrote {out / 'memorization.csv'} and memorization.json, plots")
    return summary


def run_from_flags() -> None:
    memorization_report(
        flagdefs.WORKDIR.value,
        parse_thresholds(_THRESHOLDS.value),
        _SINGLETON.value,
        _PRIVACY_QUERIES.value,
    )


main = flagdefs.main_for(run_from_flags)


if __name__ == "__main__":
    app.run(main)

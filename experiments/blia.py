r"""Label memorization under label-DP: one store per ε, both BLIA attacks, the audit.

    python -m experiments.blia --workdir=runs/blia_bc --dataset=breast_cancer --arch=mlp \
        --epsilons=0.5,1,2,4,8,inf --num_models=16
    # -> runs/blia_bc/eps_<ε>/ (one store per ε), runs/blia_bc/results/blia.json, blia.md,
    #    blia.png; prints the table (16 mlp models x 6 ε: a few minutes on 2 CPU cores,
    #    numbers in docs/results.md, "Label-DP and BLIA")

For every ε of `--epsilons` ("inf": label-DP off) it trains the models of the run's config
(every `experiments.train_shadows` flag applies) with `--label_dp_epsilon=ε` into
``WORKDIR/eps_<ε>/`` through the library (`lira_jax.train.run.train_shadows`: resumable, a
re-run trains nothing already in a store), then runs the confidence and log-loss margin
BLIA on the canaries (`--num_canaries`, default 100) of each store and compares their
success with the bound e^ε / (1 + e^ε) that label-DP guarantees (with DP-SGD also the
accountant's (ε, δ) bound). A lower confidence bound above the bound is printed as a
LABEL-DP VIOLATION. The task must be binary: `--task=pair:A,B` or `parity` on multi-class
datasets.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from absl import app, flags, logging

from experiments import flagdefs, train_shadows
from lira_jax import store as store_lib
from lira_jax.attacks import blia as blia_lib
from lira_jax.data import apply_task, load_dataset
from lira_jax.report import label_dp as report
from lira_jax.train import run

__all__ = ["DEFAULT_NUM_CANARIES", "blia_of_store", "blia_sweep", "parse_epsilons", "sub_workdir"]

DEFAULT_NUM_CANARIES = 100

_EPSILONS = flags.DEFINE_list(
    "epsilons",
    ["0.5", "1", "2", "4", "8", "inf"],
    "Label-DP epsilons of randomized response, one store each ('inf': label-DP off).",
)


def parse_epsilons(values: Sequence[str]) -> list[float]:
    """`--epsilons` as floats, sorted ascending (inf last).

    Raises:
      ValueError: a value that is not a number >= 0 (or inf), a duplicate, or none at all.
    """
    out = []
    for v in values:
        try:
            eps = float(v)
        except ValueError:
            raise ValueError(
                f"--epsilons has {v!r}; give numbers >= 0 or inf, e.g. 0.5,1,2,4,8,inf."
            ) from None
        if math.isnan(eps) or eps < 0:
            raise ValueError(f"--epsilons has {v!r}; every ε must be >= 0 (or inf for off).")
        out.append(eps)
    if not out:
        raise ValueError("--epsilons is empty; give at least one ε, e.g. 1,inf.")
    if len(set(out)) != len(out):
        raise ValueError(f"--epsilons={','.join(values)} repeats a value; give each ε once.")
    return sorted(out)


def sub_workdir(workdir: str | Path, epsilon: float) -> Path:
    """``workdir/eps_<ε>`` (``eps_0.5``, ``eps_1``, ``eps_inf``)."""
    return Path(workdir) / f"eps_{epsilon:g}"


def _mean_of_records(store: store_lib.LogitStore, key: str) -> float | None:
    values = [v for r in store.records() for v in r.get("extra", {}).get(key, [])]
    return float(np.mean(values)) if values else None


def blia_of_store(store: store_lib.LogitStore) -> dict:
    """Both attacks and the audit on one complete store with canaries (`blia.evaluate`).

    Everything comes from the store: logits, keep, canaries, private labels, the label-DP ε
    in its config and DP-SGD's privacy in its block records.

    Returns:
      `blia.evaluate`'s dict plus ``epsilon_hat`` ({attack: ε̂}), ``dp_epsilon`` (the
      accountant's ε or None), and mean ``train_accuracy`` / ``test_accuracy`` of the models
      (train accuracy against the labels each model trained on).

    Raises:
      IncompleteStoreError: blocks are missing. ValueError: no canaries or not binary.
    """
    store.require_complete()
    if not store.has_array("canary"):
        raise ValueError(
            f"The store at {store.path} has no canaries; train it with --num_canaries=K > 0."
        )
    privacy = store.records()[0].get("extra", {}).get("privacy")
    with warnings.catch_warnings():
        # A violation is reported in the entry and printed by the sweep; not twice.
        warnings.simplefilter("ignore", blia_lib.LabelDPViolationWarning)
        entry = blia_lib.evaluate(
            store.read_logits(),
            store.private_labels(),
            store.keep(),
            store.canary(),
            label_dp_epsilon=store.config.get("label_dp_epsilon"),
            privacy=privacy,
        )
    entry["epsilon_hat"] = {k: a["epsilon_hat"] for k, a in entry["audit"].items()}
    entry["dp_epsilon"] = None if privacy is None else privacy["epsilon"]
    entry["train_accuracy"] = _mean_of_records(store, "train_accuracy")
    entry["test_accuracy"] = _mean_of_records(store, "test_accuracy")
    return entry


def _check_binary(config: dict, data_dir: str | None) -> None:
    """Refuses a task that is not binary, before anything is trained."""
    run.check_config(run.canonical_config(config))
    ds = apply_task(
        load_dataset(config["dataset"], data_dir, config["max_train"]),
        run.config_option(config, "task"),
    )
    if ds.num_classes != 2:
        raise ValueError(
            f"BLIA infers binary labels, but {config['dataset']!r} with task="
            f"{run.config_option(config, 'task')!r} has {ds.num_classes} classes; use "
            "--task=pair:A,B (e.g. pair:3,8) or --task=parity."
        )


def blia_sweep(
    base_config: dict,
    workdir: str | Path,
    epsilons: Sequence[float],
    *,
    data_dir: str | None = None,
    train_kwargs: dict | None = None,
    log: Callable[[str], None] = logging.info,
) -> dict:
    """Trains (or reuses) one store per ε, attacks each, writes results/blia.{json,md,png}.

    Args:
      base_config: a run config (`train_shadows.make_config`) with canaries and without
        ``label_dp_epsilon`` (the sweep sets it per ε).
      workdir: run directory; stores go to `sub_workdir(workdir, ε)`, results to
        ``workdir/results``.
      epsilons: the ε values (inf: label-DP off), e.g. from `parse_epsilons`.
      data_dir: as in `train_shadows`.
      train_kwargs: other keyword arguments of `lira_jax.train.run.train_shadows`
        (models_per_step, conv_impl, compute_dtype, logits_dtype, checkpoint_every).
      log: progress lines.

    Returns:
      The dict written to blia.json: {"config": base config, "epsilons", "entries": [one
      per ε, ascending, each `blia_of_store`'s dict plus "workdir"]}.

    Raises:
      ValueError, DatasetError, StoreError: bad input, before any store is written.
    """
    if "label_dp_epsilon" in base_config:
        raise ValueError(
            "The sweep sets label_dp_epsilon per ε from --epsilons; do not pass "
            "--label_dp_epsilon to experiments.blia."
        )
    if run.config_option(base_config, "num_canaries") < 1:
        raise ValueError("BLIA attacks canaries: give --num_canaries=K > 0 (default 100).")
    epsilons = parse_epsilons([str(e) for e in epsilons])
    _check_binary(base_config, data_dir)
    workdir = Path(workdir)
    entries = []
    for eps in epsilons:
        sub = sub_workdir(workdir, eps)
        log(f"ε = {eps:g}: store {sub / 'store'}")
        config = run.canonical_config({**base_config, "label_dp_epsilon": eps})
        store = run.train_shadows(config, sub, data_dir=data_dir, log=log, **(train_kwargs or {}))
        entry = {"workdir": sub.name, **blia_of_store(store)}
        for a in entry["audit"].values():
            if a["violation"]:
                log(f"ε = {eps:g}: {a['message']}")
                print(a["message"])
        entries.append(entry)
    results = {
        "config": base_config,
        "epsilons": [e if math.isfinite(e) else "inf" for e in epsilons],
        "entries": entries,
    }
    out = workdir / "results"
    store_lib.write_text_atomic(out / "blia.json", json.dumps(results, indent=2) + "\n")
    title = f"{base_config['dataset']}, task {run.config_option(base_config, 'task')}"
    table = report.blia_table(entries)
    store_lib.write_text_atomic(
        out / "blia.md",
        f"# BLIA and the label-DP audit: {title}, {base_config['arch']}, "
        f"{base_config['num_models']} models, {base_config['num_canaries']} canaries\n\n{table}",
    )
    report.plot_blia(entries, out / "blia.png", title=f"BLIA: {title}")
    print(table)
    log(f"Wrote {out / 'blia.json'}, blia.md and blia.png")
    return results


def run_from_flags() -> None:
    overrides = train_shadows.flag_overrides()
    if overrides["label_dp_epsilon"] is not None:
        raise ValueError(
            "experiments.blia sets label_dp_epsilon per ε: give --epsilons instead of "
            "--label_dp_epsilon."
        )
    if overrides["num_canaries"] is None:
        overrides["num_canaries"] = DEFAULT_NUM_CANARIES
    config = train_shadows.config_from_flags(num_canaries=overrides["num_canaries"])
    kwargs = train_shadows.run_kwargs_from_flags()
    data_dir = kwargs.pop("data_dir")
    blia_sweep(
        config,
        flagdefs.WORKDIR.value,
        parse_epsilons(_EPSILONS.value),
        data_dir=data_dir,
        train_kwargs=kwargs,
    )


main = flagdefs.main_for(run_from_flags, trains=True)


if __name__ == "__main__":
    app.run(main)

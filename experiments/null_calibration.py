r"""Null calibration: every attack on stores whose logits do not depend on membership.

    python -m experiments.null_calibration --workdir=runs/null
    # -> runs/null/m{M}_s{seed}/store (one store per setting), their results/attacks.json,
    #    and runs/null/results/null_calibration.{json,md}: mean AUC over seeds per attack
    #    and M; every entry should be 0.5 up to sampling error (about ±0.01 at M = 8).

Each store holds `lira_jax.data.null.null_logits` (a per-example signal shared by every
model plus per-model noise, balanced keep mask), written with `store.create_or_open` and
`write_block`, then attacked by `experiments.attack.attack` with every model a target, as a
user would run `python -m experiments.attack --workdir=... --num_targets=0`. Re-running
skips stores already written. The test suite checks the same property with a stated
bound (`tests/test_null_calibration.py`).
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from absl import app, flags, logging

from experiments import attack as attack_bin
from experiments import flagdefs
from lira_jax import store as store_lib
from lira_jax.data.null import null_logits

_MODELS = flags.DEFINE_list("null_models", ["8", "16", "64"], "Numbers of models M to try.")
_SEEDS = flags.DEFINE_integer("null_seeds", 4, "Stores (seeds 0..n-1) per M.")
_EXAMPLES = flags.DEFINE_integer("null_examples", 2000, "Examples per store.")
_QUERIES = flags.DEFINE_integer("null_queries", 2, "Queries per example.")
_CLASSES = flags.DEFINE_integer("null_classes", 10, "Classes.")


def write_null_store(
    path: Path, num_models: int, num_examples: int, num_queries: int, num_classes: int, seed: int
) -> store_lib.LogitStore:
    """Creates (or reopens) a store of `null_logits` and writes any missing models."""
    logits, labels, keep = null_logits(
        num_models, num_examples, num_queries=num_queries, num_classes=num_classes, seed=seed
    )
    config = {
        "dataset": "null",
        "num_models": num_models,
        "num_examples": num_examples,
        "num_queries": num_queries,
        "num_classes": num_classes,
        "seed": seed,
    }
    spec = store_lib.StoreSpec(
        num_models=num_models,
        num_examples=num_examples,
        num_queries=num_queries,
        num_classes=num_classes,
        query_names=tuple(f"q{a}" for a in range(num_queries)),
        config=config,
    )
    store = store_lib.create_or_open(path, spec, keep, labels)
    if not store.is_complete():
        store.write_block(0, logits)
    return store


def null_calibration(
    workdir: str | Path,
    models: Sequence[int] = (8, 16, 64),
    seeds: int = 4,
    *,
    num_examples: int = 2000,
    num_queries: int = 2,
    num_classes: int = 10,
    log: Callable[[str], None] = logging.info,
) -> dict:
    """Attacks null stores for every M in `models` and seed; returns and writes the table.

    Returns:
      {"models", "seeds", "num_examples", "auc": {attack: {str(M): [AUC per seed]}},
       "mean_auc": {attack: {str(M): mean}}}; an undefined attack has None entries.
    """
    if seeds < 1 or not models or min(models) < 2:
        raise ValueError(f"Need seeds >= 1 and every M >= 2; got {seeds=}, {models=}.")
    workdir = Path(workdir)
    aucs: dict[str, dict[str, list]] = {}
    for m in models:
        for seed in range(seeds):
            sub = workdir / f"m{m}_s{seed}"
            write_null_store(sub / "store", m, num_examples, num_queries, num_classes, seed)
            with contextlib.redirect_stdout(io.StringIO()):
                results = attack_bin.attack(sub, "all", 0, seed=seed, log=lambda _: None)
            for name, res in results.items():
                aucs.setdefault(name, {}).setdefault(str(m), []).append(res.get("auc"))
            aucs_now = ", ".join(f"{n} {r.get('auc')}" for n, r in results.items())
            log(f"M={m} seed={seed}: {aucs_now}")
    mean = {
        name: {
            m: (None if any(v is None for v in vals) else float(np.mean(vals)))
            for m, vals in per_m.items()
        }
        for name, per_m in aucs.items()
    }
    out = {
        "models": list(models),
        "seeds": seeds,
        "num_examples": num_examples,
        "auc": aucs,
        "mean_auc": mean,
    }
    lines = [
        f"Mean AUC over {seeds} null stores per M (N = {num_examples}, every model a target)",
        "",
        "| attack | " + " | ".join(f"M = {m}" for m in models) + " |",
        "|---|" + "---:|" * len(models),
    ]
    for name, per_m in mean.items():
        cells = ["n/a" if per_m[str(m)] is None else f"{per_m[str(m)]:.3f}" for m in models]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    table = "\n".join(lines) + "\n"
    results_dir = workdir / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    store_lib.write_text_atomic(results_dir / "null_calibration.json", json.dumps(out, indent=1))
    store_lib.write_text_atomic(results_dir / "null_calibration.md", table)
    print(table)
    return out


def run_from_flags() -> None:
    try:
        models = [int(m) for m in _MODELS.value]
    except ValueError:
        raise ValueError(f"--null_models={_MODELS.value} must be integers, e.g. 8,16,64.") from None
    null_calibration(
        flagdefs.WORKDIR.value,
        models,
        _SEEDS.value,
        num_examples=_EXAMPLES.value,
        num_queries=_QUERIES.value,
        num_classes=_CLASSES.value,
    )


main = flagdefs.main_for(run_from_flags)


if __name__ == "__main__":
    app.run(main)

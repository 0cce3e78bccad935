r"""Runs membership-inference attacks on a run's store and writes the results.

    python -m experiments.attack --workdir=runs/digits
    # -> runs/digits/results/attacks.json, attacks.md, roc.png; prints the table

Leave-one-model-out: each of the first `--num_targets` models is in turn the target and
all other models are its shadows; scores are pooled over targets. Nothing is retrained:
the store is only read.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from absl import app, flags, logging

from experiments import flagdefs
from lira_jax import report
from lira_jax import store as store_lib
from lira_jax.attacks import ATTACKS, evaluate_logits, resolve_attacks

_ATTACKS = flags.DEFINE_string(
    "attacks", "all", f"Comma-separated attack names, or 'all'; valid: {list(ATTACKS)}."
)
_NUM_TARGETS = flags.DEFINE_integer(
    "num_targets", 0, "How many models serve in turn as the target (0: every model)."
)


def attack(
    workdir: str | Path,
    attacks: str = "all",
    num_targets: int = 0,
    log: Callable[[str], None] = logging.info,
) -> dict[str, dict]:
    """Evaluates `attacks` on `workdir/store`; writes results/attacks.{json,md} and roc.png.

    Args:
      workdir: run directory written by `experiments.train_shadows`.
      attacks: "all" or comma-separated attack names.
      num_targets: number of target models (0: all).
      log: where progress lines go.

    Returns:
      The results dict written to attacks.json.

    Raises:
      StoreError: no store, or a store with missing model blocks (the message gives the
        command that fills them).
      ValueError: unknown attack names, a bad `num_targets`, or non-finite logits.
    """
    names = resolve_attacks(attacks)  # Fail on a bad name before reading anything.
    workdir = Path(workdir)
    store = store_lib.open_store(workdir / "store")
    store.require_complete()
    num_models = store.num_models
    num_targets = num_targets or num_models
    if not 1 <= num_targets <= num_models:
        raise ValueError(
            f"--num_targets={num_targets} must be between 1 and the number of models "
            f"({num_models}), or 0 for all."
        )
    log(f"Reading {store}")
    logits = store.read_logits()
    log(f"Attacking with {num_targets} target(s): {', '.join(names)}")
    results, curves = evaluate_logits(logits, store.labels(), store.keep(), names, num_targets)

    out = workdir / "results"
    out.mkdir(parents=True, exist_ok=True)
    table = report.markdown_table(results)
    config = store.config
    title = (
        f"{config.get('dataset')} / {config.get('arch')}: {num_models} models, "
        f"{store.num_queries} queries"
    )
    store_lib.write_text_atomic(
        out / "attacks.json", json.dumps(results, indent=2, sort_keys=False) + "\n"
    )
    store_lib.write_text_atomic(out / "attacks.md", f"# Attacks on {title}\n\n{table}")
    report.plot_roc(curves, out / "roc.png", title=title)
    print(table)
    log(f"Wrote {out / 'attacks.json'}, {out / 'attacks.md'} and {out / 'roc.png'}")
    return results


def run_from_flags() -> None:
    attack(flagdefs.WORKDIR.value, _ATTACKS.value, _NUM_TARGETS.value)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    flagdefs.exit_on_error(run_from_flags, ValueError)


if __name__ == "__main__":
    app.run(main)

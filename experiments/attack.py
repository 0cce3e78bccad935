r"""Runs membership-inference attacks on a run's store and writes the results.

    python -m experiments.attack --workdir=runs/digits
    # -> runs/digits/results/attacks.json, attacks.md, roc.png; prints the table
    python -m experiments.attack --workdir=runs/digits --exposure=labels
    # a target that returns only labels: score-based attacks are reported undefined

Leave-one-model-out: each of the first `--num_targets` models is in turn the target and
all other models are its shadows; scores are pooled over targets. Nothing is retrained:
the store is only read. The label-only attacks that query the models run on the first
`--query_targets` targets when the run has their inputs: `label_only_boundary` needs
saved parameters (`train_shadows --save_params`), `label_only_transfer` the targets'
labels on the test split (`--store_test_logits` or `--save_params`); it trains one
attacker's shadow per target.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from absl import app, flags, logging

from experiments import flagdefs
from lira_jax import memorization, report
from lira_jax import store as store_lib
from lira_jax.attacks import ATTACKS, EXPOSURES, evaluate_signals, exposed_bank, label_only

_ATTACKS = flagdefs.ATTACKS
_EXPOSURE = flagdefs.EXPOSURE
_QUERY_TARGETS = flags.DEFINE_integer(
    "query_targets",
    8,
    "Targets of the attacks that query the models (label_only_boundary, "
    "label_only_transfer): the first K of --num_targets (0: all).",
)
_BOUNDARY_EXAMPLES = flags.DEFINE_integer(
    "boundary_examples", 0, "label_only_boundary attacks the first N pool examples (0: all)."
)
_TRANSFER_AUX = flags.DEFINE_integer(
    "transfer_aux_examples",
    0,
    "label_only_transfer's auxiliary data: the first N test examples (0: the whole test split).",
)
_HSJ_RANDOM_INPUTS = flags.DEFINE_integer(
    "hsj_random_inputs",
    100,
    "Random inputs whose boundary distances set Li & Zhang's unsupervised threshold (0: none).",
)
_NUM_TARGETS = flagdefs.NUM_TARGETS
_NUM_BOOTSTRAP = flagdefs.NUM_BOOTSTRAP
_GROUPS = flags.DEFINE_enum(
    "groups",
    "none",
    ["none", "memorization", "store"],
    "Per-group results: 'memorization' splits examples by Feldman-Zhang memorization "
    "estimated from the store (buckets --mem_thresholds); 'store' uses the store's own "
    "groups (e.g. over-/under-represented of a mixture).",
)
_GROUP_THRESHOLDS = flags.DEFINE_list(
    "group_mem_thresholds", ["0.1", "0.5"], "Memorization bucket edges for --groups."
)
_ATTACK_SEED = flagdefs.ATTACK_SEED


def memorization_groups(
    store, thresholds, num_targets: int, seed: int = 0
) -> tuple[np.ndarray, list[str]]:
    """[T, N] bucket ids and names by Feldman-Zhang memorization on the identity query,
    estimated for each target from its shadow sets only (`memorization.target_memorization`),
    so that a target's own outputs never choose the bucket its examples are scored in."""
    keep = store.keep()
    correct = np.concatenate(
        [
            (
                store.read_logits(models=slice(a, min(a + 64, store.num_models)))[:, :, 0].argmax(
                    -1
                )
                == store.labels()
            )
            for a in range(0, store.num_models, 64)
        ]
    )
    mem = memorization.target_memorization(keep, correct, np.arange(num_targets), seed=seed)
    return memorization.bucketize(mem.ravel(), thresholds).reshape(mem.shape), (
        memorization.bucket_names(thresholds)
    )


def attack_names(spec: str) -> list[str]:
    """The comma-separated names of `spec`, checked to be known ("all" included)."""
    parts = [n.strip() for n in spec.split(",") if n.strip()]
    valid = ["all", *ATTACKS, *label_only.QUERYING_ATTACKS]
    unknown = [n for n in parts if n not in valid]
    if unknown:
        raise ValueError(f"Unknown attack(s) {unknown}; valid names: {valid}.")
    if not parts:
        raise ValueError(f"No attack selected; valid names: {valid}.")
    return parts


def select_attacks(
    spec: str, store, num_targets: int, query: label_only.QueryOptions | None
) -> tuple[list[str], list[str]]:
    """(registered attacks, attacks that query models) named by `spec`, validated.

    "all" is every registered attack and every querying attack whose inputs the run has;
    a querying attack named explicitly without its inputs is an error naming the flag.
    """
    parts = attack_names(spec)
    registered = [n for n in parts if n == "all" or n in ATTACKS]
    if "all" in registered:
        registered = list(ATTACKS)
    registered = list(dict.fromkeys(registered))
    query = query or label_only.QueryOptions()
    missing = label_only.missing_inputs(store, query.targets(num_targets))
    named = [n for n in label_only.QUERYING_ATTACKS if n in parts]
    lacking = [f"{n} {missing[n]}" for n in named if n in missing]
    if lacking:
        raise ValueError("; ".join(lacking) + ".")
    querying = [
        n
        for n in label_only.QUERYING_ATTACKS
        if n in named or ("all" in parts and n not in missing)
    ]
    return registered, querying


def attack(
    workdir: str | Path,
    attacks: str = "all",
    num_targets: int = 0,
    *,
    exposure: str = "logits",
    query: label_only.QueryOptions | None = None,
    num_bootstrap: int = 0,
    groups: str = "none",
    group_thresholds: tuple[float, ...] = (0.1, 0.5),
    seed: int = 0,
    rmia_gamma: float = 2.0,
    rmia_offline_a: float | str = 0.3,
    log: Callable[[str], None] = logging.info,
) -> dict[str, dict]:
    """Evaluates `attacks` on `workdir/store`; writes results/attacks.{json,md} and roc.png.

    Args:
      workdir: run directory written by `experiments.train_shadows`.
      attacks: "all" or comma-separated attack names (`select_attacks`).
      num_targets: number of target models (0: all).
      exposure: "logits" or "labels" (attacks that need scores are reported undefined).
      query: how the attacks that query models run (default `label_only.QueryOptions()`).
      num_bootstrap: bootstrap resamples for confidence intervals (0: none).
      groups: "none", "memorization" (per-bucket results, see `memorization_groups`) or
        "store" (the store's `groups` array and `group_names`, e.g. of a mixture).
      group_thresholds: memorization bucket edges.
      seed: seed of the bootstrap, of the equal-size shadow sets and of trained attack
        models (Shokri).
      rmia_gamma: RMIA's γ (both variants).
      rmia_offline_a: RMIA offline's a, or "auto" (see `lira_jax.attacks.rmia`).
      log: where progress lines go.

    Returns:
      The results dict written to attacks.json.

    Raises:
      StoreError: no store, or a store with missing model blocks (the message gives the
        command that fills them).
      ValueError: unknown attack names, a named attack whose inputs the run lacks, a bad
        `num_targets`, or non-finite logits.
    """
    attack_names(attacks)  # Fail on a bad name before reading anything.
    if exposure not in EXPOSURES:
        raise ValueError(f"--exposure={exposure!r} must be one of {EXPOSURES}.")
    workdir = Path(workdir)
    store = store_lib.open_store(workdir / "store", complete=True)
    num_models = store.num_models
    num_targets = num_targets or num_models
    if not 1 <= num_targets <= num_models:
        raise ValueError(
            f"--num_targets={num_targets} must be between 1 and the number of models "
            f"({num_models}), or 0 for all."
        )
    query = query or label_only.QueryOptions()
    query.validate()
    names, querying = select_attacks(attacks, store, num_targets, query)
    if num_bootstrap < 0:
        raise ValueError(f"--num_bootstrap={num_bootstrap} must be >= 0.")
    group_ids, group_names = None, None
    if groups == "memorization":
        group_ids, group_names = memorization_groups(store, group_thresholds, num_targets, seed)
    elif groups == "store":
        group_ids, group_names = store.groups(), store.group_names
    elif groups != "none":
        raise ValueError(f"groups={groups!r} must be 'none', 'memorization' or 'store'.")
    options = {}
    for name, rmia_options in (
        ("rmia_online", {"gamma": rmia_gamma}),
        ("rmia_offline", {"gamma": rmia_gamma, "a": rmia_offline_a}),
    ):
        if name in names:
            options[name] = rmia_options
    log(f"Attacking {store} ({exposure}) with {num_targets} target(s): {', '.join(names)}")
    needs = {s for n in names for s in ATTACKS[n].needs} | ({"predicted"} if querying else set())
    bank = exposed_bank(
        store_lib.LazyLogits(store), store.labels(), store.keep(), needs, exposure, log
    )
    common = dict(group_names=group_names, num_bootstrap=num_bootstrap, exposure=exposure)
    results, curves = {}, {}
    if names:
        results, curves = evaluate_signals(
            bank,
            names,
            num_targets,
            groups=group_ids,
            seed=seed,
            attack_options=options,
            require_defined=not querying,
            log=log,
            **common,
        )
    if querying:
        more, more_curves = label_only.evaluate_querying(
            workdir,
            store,
            bank,
            querying,
            num_targets,
            query,
            groups=group_ids,
            seed=seed,
            log=log,
            **common,
        )
        results.update(more)
        curves.update(more_curves)
        if not curves:
            reasons = "; ".join(f"{n}: {r['reason']}" for n, r in results.items())
            raise ValueError(f"Every requested attack is undefined on this data. {reasons}")
    # Timings vary run to run; attacks.json stays a deterministic function of the store.
    seconds = {name: res.pop("seconds", None) for name, res in results.items()}

    out = workdir / "results"
    out.mkdir(parents=True, exist_ok=True)
    table = report.markdown_table(results)
    config = store.config
    title = (
        f"{config.get('dataset')} / {config.get('arch')}: {num_models} models, "
        f"{store.num_queries} queries" + (", labels only" if exposure == "labels" else "")
    )
    store_lib.write_text_atomic(
        out / "attacks.json", json.dumps(results, indent=2, sort_keys=False) + "\n"
    )
    store_lib.write_text_atomic(out / "attacks.md", f"# Attacks on {title}\n\n{table}")
    store_lib.write_text_atomic(out / "attacks_seconds.json", json.dumps(seconds, indent=2) + "\n")
    report.plot_roc(curves, out / "roc.png", title=title)
    print(table)
    log(f"Wrote {out / 'attacks.json'}, {out / 'attacks.md'} and {out / 'roc.png'}")
    return results


def query_options_from_flags() -> label_only.QueryOptions:
    """The `QueryOptions` of the --query_targets, --boundary_examples,
    --transfer_aux_examples, --hsj_* and --data_dir flags."""
    return label_only.QueryOptions(
        num_targets=_QUERY_TARGETS.value,
        num_examples=_BOUNDARY_EXAMPLES.value,
        hsj=flagdefs.hsj_config(),
        num_random=_HSJ_RANDOM_INPUTS.value,
        num_aux=_TRANSFER_AUX.value,
        data_dir=flagdefs.DATA_DIR.value,
    )


def attack_kwargs_from_flags() -> dict:
    """Every argument of `attack` but the workdir, from the flags (for sweeps too)."""
    try:
        thresholds = tuple(float(v) for v in _GROUP_THRESHOLDS.value)
    except ValueError:
        raise ValueError(
            f"--group_mem_thresholds={_GROUP_THRESHOLDS.value} must be numbers."
        ) from None
    return dict(
        attacks=_ATTACKS.value,
        num_targets=_NUM_TARGETS.value,
        exposure=_EXPOSURE.value,
        query=query_options_from_flags(),
        num_bootstrap=_NUM_BOOTSTRAP.value,
        groups=_GROUPS.value,
        group_thresholds=thresholds,
        seed=_ATTACK_SEED.value,
        rmia_gamma=flagdefs.RMIA_GAMMA.value,
        rmia_offline_a=flagdefs.rmia_offline_a(),
    )


def run_from_flags() -> None:
    attack(flagdefs.WORKDIR.value, **attack_kwargs_from_flags())


main = flagdefs.main_for(run_from_flags)


if __name__ == "__main__":
    app.run(main)

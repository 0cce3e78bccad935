r"""The "Why Train More?" mixtures experiment: which examples do attacks expose?

    python -m experiments.motivation --workdir=runs/motivation --dataset=fashion_mnist_idx \
        --max_train=10000 --ood=digits,aug --mixtures=none,random,subpopulation,singletons
    # one store per (OOD source, mixture) under runs/motivation/<ood>_<mixture> (and
    # runs/motivation/none), then results/motivation.{json,md} and results/ood_*.png

Trains one store per setting in sub-workdirs (library calls, resumable: a re-run trains
nothing already in a store), runs Yeom, Shokri, Sablayrolles, Song, LiRA (online) and
RMIA (online) on each, overall and on the under-represented group, and writes the
paper's Table II layout (AUC and TPR at 0.1% FPR, "all" vs "under-represented", with 95%
bootstrap intervals and the numbers of examples and negatives behind each). For every
mixture store it also computes OOD scores of the examples (MSP and energy from their OUT
models, `lira_jax.ood`) and their Spearman correlation with the privacy score and with
memorization (the paper's Figure 1 analogue, one scatter plot per store).

`singletons` needs the store of the `random` mixture of the same OOD source (its
memorization estimates choose the singletons), so `random` is trained first whenever
`singletons` is asked for. Every train_shadows flag applies to every store; with data
prepared through tfds the same command runs at full scale (e.g. `--dataset=mnist
--ood=svhn_cropped,aug` or `--dataset=cifar10 --ood=cifar100`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from absl import app, flags, logging

from experiments import attack as attack_bin
from experiments import flagdefs, train_shadows
from lira_jax import memorization, ood, signals
from lira_jax import store as store_lib
from lira_jax.attacks import resolve_attacks
from lira_jax.data import mixtures
from lira_jax.report import curves
from lira_jax.train import pool, run

_MIXTURES = flags.DEFINE_list(
    "mixtures", list(mixtures.MIXTURES), f"Mixtures to train, from {list(mixtures.MIXTURES)}."
)
_OOD = flags.DEFINE_list(
    "ood", ["digits", "aug"], "OOD sources of the under-represented group (see --ood_dataset)."
)
_ATTACKS = flags.DEFINE_list(
    "motivation_attacks",
    ["yeom", "shokri", "sablayrolles", "song", "lira_online", "rmia_online"],
    "Attacks of the table (the paper's: Yeom, Shokri, Sablayrolles, Song, Carlini = LiRA).",
)

UNDER = mixtures.GROUP_NAMES[1]
TPR_LEVEL = "0.001"


def settings(mixture_names: list[str], oods: list[str]) -> list[tuple[str, str, str | None]]:
    """(sub-workdir name, mixture, OOD source) in training order: `none` once, and for
    each source `random` before `singletons` (which needs it)."""
    unknown = [m for m in mixture_names if m not in mixtures.MIXTURES]
    if unknown or not mixture_names:
        raise ValueError(f"--mixtures={mixture_names} must name some of {mixtures.MIXTURES}.")
    out = [("none", "none", None)] if "none" in mixture_names else []
    wanted = [m for m in mixtures.MIXTURES[1:] if m in mixture_names]
    if "singletons" in wanted and "random" not in wanted:
        wanted.insert(0, "random")
    for source in oods:
        out += [(f"{source}_{m}", m, source) for m in wanted]
    return out


def _cell(res: dict | None) -> dict:
    """AUC and TPR at 0.1% FPR with intervals and counts, from one attack result."""
    if res is None or res.get("undefined"):
        return {"undefined": True, "reason": (res or {}).get("reason", "no such group")}
    ci = res.get("ci") or {}
    return {
        "auc": res["auc"],
        "auc_interval": ci.get("auc"),
        "tpr_at_0.1%": res["tpr_at_fpr"][TPR_LEVEL],
        "tpr_interval": (ci.get("tpr_at_fpr") or {}).get(TPR_LEVEL),
        "tpr_meaningful": TPR_LEVEL not in res["fpr_out_of_reach"],
        "num_examples": res.get("num_examples"),
        "num_positives": res["num_positives"],
        "num_negatives": res["num_negatives"],
    }


def table_entry(results: dict, attacks: list[str]) -> dict:
    """attack -> {"all": cell, "under_represented": cell} from an attacks.json dict."""
    entry = {}
    for name in attacks:
        res = results[name]
        groups = res.get("groups", {})
        entry[name] = {"all": _cell(res), UNDER: _cell(groups.get(UNDER)) if groups else None}
    return entry


def ood_report(store: store_lib.LogitStore) -> tuple[dict, dict]:
    """OOD scores (MSP, energy from OUT models) vs privacy score and memorization."""
    logits = store.read_logits()
    keep, labels = store.keep(), store.labels()
    scores = ood.out_model_scores(logits, keep)
    phi = signals.logit_scaled_confidence(logits, labels, example_axis=1)
    correct = signals.correctness(logits[:, :, 0], labels, example_axis=1)
    quantities = {
        "privacy_score": memorization.privacy_score(phi, keep),
        "memorization": memorization.memorization(keep, correct),
    }
    named = {"msp": scores.msp, "energy": scores.energy}
    report = {"all": ood.correlations(named, quantities)}
    if store.has_array("groups"):
        under = store.groups() == 1
        report[UNDER] = ood.correlations(
            {k: v[under] for k, v in named.items()}, {k: v[under] for k, v in quantities.items()}
        )
    return report, {**named, **quantities}


def _fmt(cell: dict | None, key: str, interval: str) -> str:
    if cell is None:
        return "–"
    if cell.get("undefined"):
        return "undef."
    value, ci = cell[key], cell[interval]
    pct = key.startswith("tpr")
    text = f"{100 * value:.2f}%" if pct else f"{value:.2f}"
    if ci:
        text += (
            f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if pct else f" [{ci[0]:.2f}, {ci[1]:.2f}]"
        )
    if pct and not cell["tpr_meaningful"]:
        text += " (n/a)"
    return text


def markdown(results: dict, dataset: str, attacks: list[str]) -> str:
    """The paper's Table II layout: attack × mixture, AUC and TPR@0.1% FPR, all vs under."""
    lines = [
        "| attack | training set | AUC all | AUC under-represented | TPR@0.1% all | "
        "TPR@0.1% under-represented |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name in attacks:
        for setting, entry in results.items():
            label = dataset if setting == "none" else f"{dataset}+{setting.replace('_', ' (')})"
            cells = entry["attacks"][name]
            all_, under = cells["all"], cells[UNDER]
            row = [_fmt(c, "auc", "auc_interval") for c in (all_, under)]
            row += [_fmt(c, "tpr_at_0.1%", "tpr_interval") for c in (all_, under)]
            lines.append(f"| {name} | {label} | " + " | ".join(row) + " |")
    counts = [
        f"{s}: {e['num_examples']} examples ({e['num_under_represented']} under-represented), "
        f"{e['num_negatives_all']} / {e['num_negatives_under']} negatives (all / under)"
        for s, e in results.items()
    ]
    return "\n".join(lines) + "\n\nPooled over targets; " + "; ".join(counts) + ".\n"


def setting_config(
    base_config: dict, mixture: str, source: str | None, mixture_params: dict, workdir: Path
) -> dict:
    """The run config of one setting: the base run's keys plus the mixture's."""
    plain = {k: v for k, v in base_config.items() if k not in pool.MIXTURE_KEYS}
    dataset = plain.pop("dataset")
    if mixture == "none":
        return train_shadows.make_config(dataset, **plain)
    extra = {**mixture_params, "mixture": mixture, "ood_dataset": source}
    if mixture == "singletons":
        extra["singleton_workdir"] = str(Path(workdir).absolute() / f"{source}_random")
    return train_shadows.make_config(dataset, **plain, **extra)


def motivation(
    base_config: dict,
    workdir: str | Path,
    mixture_names: list[str],
    oods: list[str],
    attacks: list[str],
    *,
    mixture_params: dict | None = None,
    train_options: dict | None = None,
    num_bootstrap: int = 100,
    log: Callable[[str], None] = logging.info,
) -> dict:
    """Trains and attacks every setting; writes results/motivation.{json,md} and plots.

    Args:
      base_config: a `make_config` dict of the base run (mixture keys are set per setting).
      workdir: the experiment's directory; stores go to sub-workdirs.
      mixture_names, oods: what to train (see `settings`).
      attacks: attack names of the table.
      mixture_params: mixture settings shared by every setting (ood_size, pca_dims,
        num_clusters, singleton_threshold, augmix_severity; unset: the defaults).
      train_options: keyword arguments of `run.train_shadows` (data_dir, blocks, ...).
      num_bootstrap: bootstrap resamples for the intervals.
      log: where progress lines go.
    """
    workdir = Path(workdir)
    (workdir / "results").mkdir(parents=True, exist_ok=True)
    resolve_attacks(",".join(attacks))  # Fail on a bad name before training.
    plan = settings(mixture_names, oods)
    train_options = train_options or {}
    results, correlations = {}, {}
    for name, mixture, source in plan:
        sub = workdir / name
        config = setting_config(base_config, mixture, source, mixture_params or {}, workdir)
        log(f"== {name}: training (or reusing) {sub}")
        store = run.train_shadows(config, sub, log=log, **train_options)
        res = attack_bin.attack(
            sub,
            ",".join(attacks),
            groups="store" if mixture != "none" else "none",
            num_bootstrap=num_bootstrap,
            log=log,
        )
        entry = {"attacks": table_entry(res, attacks), "num_examples": store.num_examples}
        first = res[attacks[0]]
        under = (first.get("groups") or {}).get(UNDER, {})
        entry["num_under_represented"] = int(under.get("num_examples", 0) or 0)
        entry["num_negatives_all"] = first.get("num_negatives")
        entry["num_negatives_under"] = under.get("num_negatives", 0)
        results[name] = entry
        if mixture != "none":
            corr, values = ood_report(store)
            correlations[name] = corr
            groups = store.groups()
            for score in ("msp", "energy"):
                rho = corr["all"][score]["privacy_score"]
                curves.plot_privacy_vs_memorization(
                    values[score],
                    values["privacy_score"],
                    workdir / "results" / f"ood_{name}_{score}.png",
                    groups=groups,
                    group_names=list(store.group_names),
                    spearman={"rho": rho["spearman"], "pvalue": rho["p_value"]},
                    title=f"{name}: privacy score vs {score} (OUT models)",
                    xlabel=f"{score} (mean over OUT models)",
                )
    out = {"dataset": base_config["dataset"], "settings": results, "ood": correlations}
    out_dir = workdir / "results"
    store_lib.write_text_atomic(out_dir / "motivation.json", json.dumps(out, indent=2) + "\n")
    table = markdown(results, base_config["dataset"], attacks)
    store_lib.write_text_atomic(out_dir / "motivation.md", f"# Why Train More? mixtures\n\n{table}")
    print(table)
    return out


def run_from_flags() -> None:
    config = train_shadows.config_from_flags()
    motivation(
        config,
        flagdefs.WORKDIR.value,
        _MIXTURES.value,
        _OOD.value,
        _ATTACKS.value,
        mixture_params=train_shadows.mixture_params_from_flags(),
        train_options=train_shadows.run_kwargs_from_flags(),
        num_bootstrap=flags.FLAGS.num_bootstrap,
    )


main = flagdefs.main_for(run_from_flags, trains=True)


if __name__ == "__main__":
    app.run(main)

r"""How many shadow models does each example need? Attack success vs number of models.

    python -m experiments.sample_complexity --workdir=runs/digits
    # -> runs/digits/results/sample_complexity.json and sample_complexity.png: LiRA AUC and
    #    TPR as a function of k shadow models per side, overall and per memorization bucket,
    #    with the 1/H² (Hellinger) estimate of the models needed per bucket.

For each k, each of `--num_targets` targets and each of `--num_draws` random draws, every
example gets k IN and k OUT shadow models (random among those available), the attack is
scored and the metrics pooled over targets; curves report the median and a percentile
interval over draws (see `lira_jax.sample_complexity`). The curves place each target's
examples in memorization buckets estimated from that target's shadow models only
(`memorization.target_memorization`); the Hellinger columns describe the examples, with
buckets from all models.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from absl import app, flags, logging

from experiments import flagdefs
from experiments.memorization import parse_thresholds
from lira_jax import memorization as mem_lib
from lira_jax import sample_complexity as sc
from lira_jax import store as store_lib
from lira_jax.report import curves

_KS = flags.DEFINE_list("ks", [], "Shadow models per side to try (default 1, 2, 4, ..., max).")
_NUM_DRAWS = flags.DEFINE_integer("num_draws", 20, "Random draws of the k models per point.")
_NUM_TARGETS = flags.DEFINE_integer("sc_num_targets", 8, "Target models per draw.")
_THRESHOLDS = flags.DEFINE_list(
    "bucket_thresholds", ["0.1", "0.5"], "Memorization bucket edges (ascending)."
)
_TARGET_AUC = flags.DEFINE_float(
    "target_auc", 0.75, "Report, per bucket, the smallest k whose median AUC reaches this."
)
_SEED = flags.DEFINE_integer("sc_seed", 0, "Seed of the draws.")
_PLOT_ATTACK = "lira_online_fixed_variance"


def sample_complexity_report(
    workdir: str | Path,
    *,
    ks: list[int] | None = None,
    num_draws: int = 20,
    num_targets: int = 8,
    thresholds: tuple[float, ...] = mem_lib.DEFAULT_BUCKET_THRESHOLDS,
    target_auc: float = 0.75,
    seed: int = 0,
    log: Callable[[str], None] = logging.info,
) -> dict:
    """Computes and writes the sample-complexity curves of `workdir/store`; returns them."""
    workdir = Path(workdir)
    store = store_lib.open_store(workdir / "store", complete=True)
    keep, labels = store.keep(), store.labels()
    log(f"Reading {store}")
    sig = mem_lib.memorization_signals(store.read_logits(), labels)
    mem = mem_lib.memorization(keep, sig.correct)
    buckets = mem_lib.bucketize(mem, thresholds)
    names = mem_lib.bucket_names(thresholds)
    # The curves group each target's examples by memorization estimated without that
    # target (its own outputs would otherwise leak its membership into the buckets).
    target_mem = mem_lib.target_memorization(
        keep, sig.correct, np.arange(min(num_targets, keep.shape[0])), seed=seed
    )
    target_buckets = mem_lib.bucketize(target_mem.ravel(), thresholds).reshape(target_mem.shape)
    log(f"Curves over k={ks or 'default'}, {num_draws} draws, {num_targets} targets")
    result = sc.shadow_model_curves(
        sig.phi,
        keep,
        ks=ks,
        num_draws=num_draws,
        num_targets=num_targets,
        groups=target_buckets,
        group_names=names,
        seed=seed,
    )
    h2 = sc.per_example_hellinger_squared(sig.phi, keep)
    result["hellinger"] = sc.compare_with_hellinger(
        result, h2, buckets, names, attack=_PLOT_ATTACK, target=target_auc
    )
    result["target_auc"] = target_auc
    result["spearman_memorization_privacy_score"] = sc.memorization_privacy_spearman(
        mem, mem_lib.privacy_score(sig.phi, keep)
    )
    out = workdir / "results"
    store_lib.write_text_atomic(
        out / "sample_complexity.json", json.dumps(sc.to_jsonable(result), indent=1) + "\n"
    )
    curves.plot_shadow_model_curves(
        result, out / "sample_complexity.png", attack=_PLOT_ATTACK, target=target_auc
    )
    print(summary_table(result))
    log(f"Wrote {out / 'sample_complexity.json'} and sample_complexity.png")
    return result


def _count(n: float) -> str:
    """An example count: exact, or a mean per target to one decimal."""
    return f"{n:.0f}" if float(n).is_integer() else f"{n:.1f}"


def summary_table(result: dict, attack: str = _PLOT_ATTACK) -> str:
    """Markdown: median AUC per k (rows) and group (columns), then the Hellinger comparison."""
    groups = list(result["groups"])
    entry = result["attacks"][attack]["groups"]
    lines = [
        f"{attack}: median AUC over {result['num_draws']} draws (k shadow models per side)",
        "",
        "| k | "
        + " | ".join(f"{g} (n={_count(result['groups'][g]['num_examples'])})" for g in groups)
        + " |",
        "|---:|" + "---:|" * len(groups),
    ]
    for i, k in enumerate(result["ks"]):
        cells = []
        for g in groups:
            v = entry[g]["auc"]["median"][i]
            cells.append("n/a" if v is None else f"{v:.3f}")
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"| group | k reaching AUC {result['target_auc']} | median H² | median 1/H² |",
        "|---|---:|---:|---:|",
    ]
    for g, h in result["hellinger"].items():
        est = h["median_models_estimate"]
        lines.append(
            f"| {g} | {h['measured_k'] if h['measured_k'] is not None else 'never'} | "
            f"{h['median_h2']:.4f} | {'inf' if est is None else f'{est:.1f}'} |"
        )
    return "\n".join(lines) + "\n"


def run_from_flags() -> None:
    try:
        ks = [int(k) for k in _KS.value] or None
    except ValueError:
        raise ValueError(f"--ks={_KS.value} must be integers, e.g. 1,2,4,8.") from None
    sample_complexity_report(
        flagdefs.WORKDIR.value,
        ks=ks,
        num_draws=_NUM_DRAWS.value,
        num_targets=_NUM_TARGETS.value,
        thresholds=parse_thresholds(_THRESHOLDS.value),
        target_auc=_TARGET_AUC.value,
        seed=_SEED.value,
    )


main = flagdefs.main_for(run_from_flags)


if __name__ == "__main__":
    app.run(main)

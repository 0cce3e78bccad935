r"""Audits a model that lira_jax did not train: its outputs against the store's shadows.

    python -m experiments.export_queries --workdir=runs/mine --output=runs/mine/queries
    # ... run runs/mine/queries/inputs.npy through your model, save its outputs [N, A, C] ...
    python -m experiments.audit --workdir=runs/mine --target_logits=outputs.npy \
        --target_format=probs --target_keep=keep.npy
    # -> runs/mine/results/audit_outputs/: scores.csv, ranking.csv, audit.json, audit.md,
    #    roc.png (with --target_keep), scores.png, exposed.png; prints the table

Every attack that has a "target against shadows" form runs: LiRA online and offline with
per-example and fixed variance, RMIA, the global threshold, Yeom, the reference attack,
Song, Sablayrolles, Shokri; with `--exposure=labels` the gap and augmentation label-only
attacks (the target's outputs may then be [N, A] integer labels). The target is not one of
the store's models, so all M shadows serve every example and no leave-one-out is needed
(`lira_jax.attacks.external`). The scores never depend on `--target_keep`, which only
evaluates them: with it, AUC and TPR at 1% / 0.1% / 0.01% FPR with intervals as in
attacks.json, and the ROC; without it, the scores, their distribution and the ranking.

Inputs (formats in `lira_jax.store.exchange`): `--target_logits` a .npy, .npz or zarr array
of the target's outputs on `experiments.export_queries`'s inputs, in their order;
`--target_format` says whether they are logits, probabilities or log-probabilities;
`--target_keep` the target's true membership [N] bool. Every bad input gets one error, and
nothing in the store is written: the audit writes only under `--output`.

The report warns when the target's accuracy on members and non-members differs from the
shadows' by more than `--recipe_tolerance` (a recipe mismatch, which weakens the attacks
that model the IN side): prefer offline LiRA, or shadows trained to the target's recipe.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from absl import app, flags, logging

from experiments import flagdefs

_TARGET = flags.DEFINE_string(
    "target_logits",
    None,
    "The target's outputs [N, A, C] on the exported queries (.npy, .npz or zarr array; "
    "with --exposure=labels also [N, A] integer labels).",
)
_TARGET_KEEP = flags.DEFINE_string(
    "target_keep", None, "The target's true membership [N] bool (.npy / .npz); optional."
)
_TARGET_FORMAT = flags.DEFINE_enum(
    "target_format",
    "logits",
    ["logits", "probs", "log_probs"],
    "What --target_logits holds: logits (raw scores), probs (rows summing to 1) or log_probs.",
)
_OUTPUT = flagdefs.OUTPUT
_RANK_BY = flags.DEFINE_string(
    "rank_by",
    "auto",
    "The attack whose scores rank the most exposed examples (auto: lira_online, or with "
    "--exposure=labels label_only_augmentation_lira; the first defined attack otherwise).",
)
_TOP = flags.DEFINE_integer("top_examples", 20, "How many of the most exposed examples to show.")
_RECIPE_TOLERANCE = flags.DEFINE_float(
    "recipe_tolerance",
    0.05,
    "Warn when the target's accuracy on members or non-members differs from the shadows' by "
    "more than this.",
)


def _rank_attack(spec: str, exposure: str, scores: dict) -> str:
    if spec != "auto":
        if spec not in scores:
            raise ValueError(
                f"--rank_by={spec!r} is not among the defined attacks {sorted(scores)}."
            )
        return spec
    preferred = "label_only_augmentation_lira" if exposure == "labels" else "lira_online"
    return preferred if preferred in scores else next(iter(scores))


def _write_csv(path: Path, header: list[str], rows) -> None:
    from lira_jax import store as store_lib

    lines = []

    class _Lines:
        def write(self, text):
            lines.append(text)

    writer = csv.writer(_Lines(), lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    store_lib.write_text_atomic(path, "".join(lines))


def _pool_images(config: dict, data_dir: str | None, indices: np.ndarray):
    """The identity-query inputs of the pool examples `indices`, or (None, why not)."""
    from lira_jax.data.datasets import DatasetError
    from lira_jax.train.pool import load_store_dataset

    try:
        ds = load_store_dataset(config, data_dir)
    except (DatasetError, ValueError, OSError) as e:
        return None, f"images not shown: the data could not be read ({e})"
    if ds.tabular:
        return None, "tabular data: scores shown as bars"
    return ds.x_train[indices], None


def audit(
    workdir: str | Path,
    target_path: str | Path,
    *,
    target_format: str = "logits",
    target_keep_path: str | Path | None = None,
    exposure: str = "logits",
    attacks: str = "all",
    output: str | Path | None = None,
    num_bootstrap: int = 100,
    seed: int = 0,
    rmia_gamma: float = 2.0,
    rmia_offline_a: float | str = 0.3,
    rank_by: str = "auto",
    top_examples: int = 20,
    recipe_tolerance: float = 0.05,
    data_dir: str | None = None,
    log: Callable[[str], None] = logging.info,
) -> dict:
    """Audits the target's outputs at `target_path` against `workdir/store`; writes the report.

    Returns:
      The audit.json dict.

    Raises:
      StoreError: no store, a store with missing blocks, unreadable target files.
      ValueError: outputs or keep that do not fit the store (`TargetOutputError`), unknown
        attacks, bad options.
    """
    from lira_jax import report
    from lira_jax import store as store_lib
    from lira_jax.attacks import external, resolve_attacks
    from lira_jax.store import exchange

    if top_examples < 1:
        raise ValueError(f"--top_examples={top_examples} must be >= 1.")
    if num_bootstrap < 0:
        raise ValueError(f"--num_bootstrap={num_bootstrap} must be >= 0.")
    workdir, target_path = Path(workdir), Path(target_path)
    store = store_lib.open_store(workdir / "store", complete=True)
    outputs = exchange.read_target_outputs(target_path)
    keep = None if target_keep_path is None else exchange.read_target_keep(target_keep_path)
    options = {
        "rmia_online": {"gamma": rmia_gamma},
        "rmia_offline": {"gamma": rmia_gamma, "a": rmia_offline_a},
    }
    names = resolve_attacks(attacks)
    if rank_by != "auto" and rank_by not in names:
        raise ValueError(
            f"--rank_by={rank_by!r} must be 'auto' or one of the attacks run: {names}."
        )
    options = {k: v for k, v in options.items() if k in names}
    log(f"Auditing {target_path} against {store} ({exposure}): {', '.join(names)}")
    result = external.audit_target(
        store,
        outputs,
        target_format=target_format,
        target_keep=keep,
        attacks=names,
        exposure=exposure,
        num_bootstrap=num_bootstrap if keep is not None else 0,
        seed=seed,
        attack_options=options,
        recipe_tolerance=recipe_tolerance,
        log=log,
    )
    if not result.scores:
        reasons = "; ".join(f"{n}: {r['reason']}" for n, r in result.results.items())
        raise ValueError(f"Every requested attack is undefined on this target. {reasons}")
    out = Path(output) if output else workdir / "results" / f"audit_{target_path.stem}"
    out.mkdir(parents=True, exist_ok=True)
    labels = store.labels()
    keep = result.target_keep
    by = _rank_attack(rank_by, exposure, result.scores)
    order = np.argsort(-result.scores[by], kind="stable")
    top = [
        {
            "index": int(i),
            "label": int(labels[i]),
            "score": float(result.scores[by][i]),
            **({"member": bool(keep[i])} if keep is not None else {}),
        }
        for i in order[:top_examples]
    ]

    defined = list(result.scores)
    member_col = ["member"] if keep is not None else []
    _write_csv(
        out / "scores.csv",
        ["index", "label", *member_col, *defined],
        (
            [n, int(labels[n]), *([int(keep[n])] if keep is not None else [])]
            + [repr(float(result.scores[a][n])) for a in defined]
            for n in range(store.num_examples)
        ),
    )
    _write_csv(
        out / "ranking.csv",
        ["rank", "index", "label", *member_col, f"score_{by}"],
        (
            [r + 1, int(n), int(labels[n]), *([int(keep[n])] if keep is not None else [])]
            + [repr(float(result.scores[by][n]))]
            for r, n in enumerate(order)
        ),
    )
    results = {
        name: {k: v for k, v in res.items() if k != "seconds"}
        for name, res in result.results.items()
    }
    config = store.config
    title = (
        f"{target_path.name} against {store.num_models} {config.get('arch')} shadows on "
        f"{config.get('dataset')} ({store.num_queries} queries"
        + (", labels only)" if exposure == "labels" else ")")
    )
    images, why = _pool_images(config, data_dir, order[:top_examples])
    notes = [why] if why else []
    summary = {
        "target": {
            "outputs": str(target_path.resolve()),
            "format": target_format,
            "exposure": exposure,
            "keep": None if target_keep_path is None else str(Path(target_keep_path).resolve()),
            "num_members": None if keep is None else int(keep.sum()),
        },
        "store": {
            "path": str(store.path.resolve()),
            "config_fingerprint": store.metadata["config_fingerprint"],
            "num_models": store.num_models,
            "num_examples": store.num_examples,
            "num_queries": store.num_queries,
        },
        "protocol": "external target against all store models (no leave-one-out)",
        "recipe": result.recipe,
        "attacks": results,
        "ranking": {"by": by, "top": top},
    }
    store_lib.write_text_atomic(out / "audit.json", json.dumps(summary, indent=2) + "\n")
    text = report.audit_markdown(title, results, result.recipe, top, by, keep is not None, notes)
    store_lib.write_text_atomic(out / "audit.md", text)
    if result.curves:
        report.plot_roc(result.curves, out / "roc.png", title=f"Audit: {target_path.name}")
    report.plot_score_distributions(result.scores, out / "scores.png", keep)
    report.plot_exposed_examples(
        [t["index"] for t in top],
        [t["score"] for t in top],
        [t["label"] for t in top],
        out / "exposed.png",
        images=images,
        members=None if keep is None else [t["member"] for t in top],
        title=f"Most exposed by {by}",
    )
    print(text)
    log(f"Wrote the audit to {out}")
    return summary


def run_from_flags() -> None:
    if not _TARGET.value:
        raise ValueError(
            "--target_logits is required: the target's outputs on the exported queries."
        )
    audit(
        flagdefs.WORKDIR.value,
        _TARGET.value,
        target_format=_TARGET_FORMAT.value,
        target_keep_path=_TARGET_KEEP.value,
        exposure=flagdefs.EXPOSURE.value,
        attacks=flagdefs.ATTACKS.value,
        output=_OUTPUT.value,
        num_bootstrap=flagdefs.NUM_BOOTSTRAP.value,
        seed=flagdefs.ATTACK_SEED.value,
        rmia_gamma=flagdefs.RMIA_GAMMA.value,
        rmia_offline_a=flagdefs.rmia_offline_a(),
        rank_by=_RANK_BY.value,
        top_examples=_TOP.value,
        recipe_tolerance=_RECIPE_TOLERANCE.value,
        data_dir=flagdefs.DATA_DIR.value,
    )


main = flagdefs.main_for(run_from_flags)


if __name__ == "__main__":
    app.run(main)

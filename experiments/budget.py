r"""Trains only the shadow models an audit needs: a pilot, then blocks until the attack on
the examples worth auditing is strong and stable.

    python -m experiments.budget --workdir=runs/budget --target_tpr=0.5 --at_fpr=0.01 \
        --pilot_models=8 --step_models=8 --max_models=64 --top=30 --compare_full=64
    # -> runs/budget/results/budget.json, budget.md, budget.png: per check the selected
    #    examples' and all examples' AUC / TPR with intervals, where it stopped, and the
    #    selected examples at the stop against the same examples and all examples with 64.

The store (RUN/store) is one ordinary store of the config given by the training flags
(every `experiments.train_shadows` flag works; unset ones take the dataset's defaults),
with num_models = --max_models and the keep rule "pairs" (complementary pairs of models,
balanced over every even prefix). It trains the pilot (--pilot_models), selects the
examples (--select=memorization|privacy_score|all, --top=K) from the pilot alone, then
trains --step_models at a time and checks LiRA online fixed variance after each step;
it stops when the stopping targets' TPR at --at_fpr reaches --target_tpr and its interval
moved by at most --stop_tolerance since the previous check, or at --max_models. The
reported TPR comes from other targets than the ones the rule reads; the protocol, in full,
is the docstring of `lira_jax.shadow_budget`. --compare_full=F trains the first F models of
the same store (or reads them if they are there) and reports the fixed budget beside the
stop. Re-running the same command after a kill continues where it stopped and reaches the
same decisions.
"""

from __future__ import annotations

import json
from pathlib import Path

from absl import app, flags, logging

from experiments import flagdefs
from experiments import train_shadows as ts
from lira_jax import shadow_budget as sb
from lira_jax import store as store_lib
from lira_jax.data import tasks
from lira_jax.report import budget as report
from lira_jax.sample_complexity import to_jsonable
from lira_jax.train import pool, run

_TARGET_TPR = flags.DEFINE_float(
    "target_tpr", 0.5, "Stop when the selected examples' TPR at --at_fpr reaches this."
)
_AT_FPR = flags.DEFINE_float("at_fpr", 0.01, "FPR at which the stopping TPR is read.")
_PILOT_MODELS = flags.DEFINE_integer(
    "pilot_models", 8, "Models of the pilot that selects the examples (even, >= 4)."
)
_STEP_MODELS = flags.DEFINE_integer(
    "step_models", 8, "Models trained between two checks (a multiple of 4)."
)
_MAX_MODELS = flags.DEFINE_integer(
    "max_models", 256, "The most models to train (the store's num_models; even)."
)
_SELECT = flags.DEFINE_enum(
    "select",
    "memorization",
    list(sb.SELECTIONS),
    "Which examples to audit: the --top by the pilot's memorization lower bound, by its "
    "privacy score, or all examples.",
)
_TOP = flags.DEFINE_integer("top", 100, "How many examples --select picks (not for 'all').")
_COMPARE_FULL = flags.DEFINE_integer(
    "compare_full",
    None,
    "Also train (or read) the first N models of the store and report the fixed budget of N "
    "models beside the adaptive stop (N <= --max_models).",
)
_STOP_TOLERANCE = flags.DEFINE_float(
    "stop_tolerance",
    0.05,
    "Stop only once both ends of the stopping TPR's interval moved by at most this since "
    "the previous check.",
)


def _refuse_training_flags() -> None:
    """The flags of train_shadows that the planner sets itself."""
    f = flags.FLAGS
    if f["num_models"].present:
        raise ValueError("experiments.budget sets the store's num_models: use --max_models.")
    if f["model_range"].present or f["distributed"].value:
        raise ValueError(
            "experiments.budget chooses the models to train itself; drop --model_range and "
            "--distributed."
        )
    if f["keep_rule"].value not in (None, "pairs"):
        raise ValueError(
            f"--keep_rule={f['keep_rule'].value}: experiments.budget trains complementary "
            "pairs (--keep_rule=pairs), whose every even prefix is a balanced store."
        )
    if f["pkeep"].value not in (None, 0.5):
        raise ValueError(
            f"--pkeep={f['pkeep'].value}: experiments.budget trains complementary pairs of "
            "models, so every example is IN for half of them (pkeep 0.5); drop --pkeep."
        )


def settings_from_flags() -> sb.BudgetSettings:
    """The planner's settings of the flags (validated, without the data)."""
    settings = sb.BudgetSettings(
        target_tpr=_TARGET_TPR.value,
        at_fpr=_AT_FPR.value,
        pilot_models=_PILOT_MODELS.value,
        step_models=_STEP_MODELS.value,
        max_models=_MAX_MODELS.value,
        select=_SELECT.value,
        top=_TOP.value,
        tolerance=_STOP_TOLERANCE.value,
        num_bootstrap=flagdefs.NUM_BOOTSTRAP.value,
        seed=flagdefs.ATTACK_SEED.value,
    )
    settings.validate()
    return settings


def pool_size(config: dict, data_dir: str | None) -> int:
    """The number of examples N of the run's pool, as `lira_jax.train.run.prepare` finds it
    (loads the data; writes nothing)."""
    dataset = pool.load_pool(config, data_dir).dataset
    return int(tasks.apply_task(dataset, run.config_option(config, "task")).x_train.shape[0])


def budget(
    config: dict,
    workdir: str | Path,
    settings: sb.BudgetSettings,
    *,
    compare_full: int | None = None,
    run_kwargs: dict | None = None,
    log=logging.info,
) -> dict:
    """Runs the adaptive audit of `config` in `workdir` and writes results/budget.*.

    Args:
      config: a run config with keep_rule "pairs" and num_models = settings.max_models.
      workdir: run directory (store/ and results/).
      settings: the planner's settings.
      compare_full: the fixed budget to compare with (None: none).
      run_kwargs: execution options of `lira_jax.train.run.train_shadows`.
      log: progress lines.

    Returns:
      The result of `shadow_budget.adaptive_audit` (JSON-serialisable form).
    """
    workdir = Path(workdir)
    if config.get("keep_rule") != "pairs" or config["num_models"] != settings.max_models:
        raise ValueError(
            "The budget's config needs keep_rule='pairs' and num_models = max_models "
            f"({settings.max_models}); got {config.get('keep_rule')!r}, {config['num_models']}."
        )
    sb.check_compare_full(compare_full, settings)
    run_kwargs = dict(run_kwargs or {})
    run.check_config(config)
    settings.validate(pool_size(config, run_kwargs.get("data_dir")))  # before any training
    out = workdir / "results"

    def grow(k: int) -> sb.Prefix:
        store = ts.train_shadows(config, workdir, model_range=f"0:{k}", log=log, **run_kwargs)
        return sb.read_prefix(store, k)

    def write(result: dict) -> None:
        data = to_jsonable(result)
        store_lib.write_text_atomic(out / "budget.json", json.dumps(data, indent=1) + "\n")
        if data["checks"]:
            store_lib.write_text_atomic(out / "budget.md", report.budget_markdown(data))
            report.plot_budget(data, out / "budget.png")

    result = sb.adaptive_audit(grow, settings, compare_full=compare_full, on_check=write, log=log)
    data = to_jsonable(result)
    print(report.budget_markdown(data))
    log(f"Wrote {out / 'budget.json'}, budget.md and budget.png")
    return data


def run_from_flags() -> None:
    _refuse_training_flags()
    settings = settings_from_flags()
    config = ts.config_from_flags(num_models=settings.max_models, keep_rule="pairs")
    budget(
        config,
        flagdefs.WORKDIR.value,
        settings,
        compare_full=_COMPARE_FULL.value,
        run_kwargs=ts.run_kwargs_from_flags(),
    )


main = flagdefs.main_for(run_from_flags, trains=True)


if __name__ == "__main__":
    app.run(main)

r"""Label-only vs score-based attacks under defenses: one store per setting, every attack.

    python -m experiments.label_only --workdir=runs/label_only_digits \
        --weight_decays=0,5e-4,5e-3 --queries=ring1+rot4
    # -> runs/label_only_digits/wd_0/, wd_0.0005/, wd_0.005/ (one run each, parameters
    #    saved), results/label_only.json, label_only.md, label_only.png; prints the tables
    #    (numbers and times in docs/results.md, "Label-only attacks")

Settings (the defenses the label-only papers found to matter):
  * L2 regularisation: one store per `--weight_decays` value;
  * DP-SGD: one store per `--dp_noise_multipliers` value (clip norm, δ and accountant from
    `--dp_clip_norm`, `--dp_delta`, `--dp_accountant`; weight decay from `--weight_decay`
    or the dataset's default);
  * confidence masking: every store is also evaluated as a target that exposes only labels
    (`--exposures`, default logits,labels): attacks that need scores are then undefined,
    and label-only attacks are unchanged (they read only the argmax: their entries are the
    logits-exposure ones, see `lira_jax.attacks.label_exposure`).
Every `experiments.train_shadows` flag sets the base config (`--save_params` is always on:
the boundary attack queries the models) and every `experiments.attack` flag the attacks
(`--attacks=all`: every registered attack, the boundary attack on the first
`--query_targets` targets, the transfer attack). Each setting's store is trained through
the library (`lira_jax.train.run.train_shadows`) into ``WORKDIR/<setting>/``, resumable
and verifiable on its own; its attacks go to ``WORKDIR/<setting>/results/`` as with
`experiments.attack`. The same seed gives every setting the same keep mask and
initialisations.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from absl import app, flags, logging

from experiments import attack as attack_bin
from experiments import flagdefs, train_shadows
from lira_jax import store as store_lib
from lira_jax.attacks import EXPOSURES, label_exposure
from lira_jax.report import defenses as defense_report
from lira_jax.train import dpsgd, run

__all__ = [
    "Setting",
    "defense_settings",
    "label_only_sweep",
    "mean_of_records",
    "parse_values",
    "setting_configs",
]

_WEIGHT_DECAYS = flags.DEFINE_list(
    "weight_decays", ["0", "5e-4", "5e-3"], "L2 settings: one store per weight decay."
)
_DP_NOISE_MULTIPLIERS = flags.DEFINE_list(
    "dp_noise_multipliers",
    [],
    "DP-SGD settings: one store per noise multiplier sigma (empty: none).",
)
_EXPOSURES = flags.DEFINE_list(
    "exposures",
    list(EXPOSURES),
    "Exposures every store is attacked under: logits, labels (confidence masking).",
)


@dataclasses.dataclass(frozen=True)
class Setting:
    """One trained store of the sweep.

    Attributes:
      name: its sub-workdir (e.g. "wd_0.0005", "dp_1").
      defense: the family ("weight_decay", "dp_sgd"), the plot's panel.
      strength: the family's parameter (the plot's x value).
      changes: config keys set over the base config (`train_shadows.make_config` keys).
    """

    name: str
    defense: str
    strength: float
    changes: dict


def parse_values(values: Sequence[str], flag: str) -> list[float]:
    """A list flag as distinct finite numbers >= 0, in the given order.

    Raises:
      ValueError: a value that is not such a number, or a repeat (naming the flag).
    """
    out = []
    for v in values:
        try:
            x = float(v)
        except ValueError:
            raise ValueError(f"--{flag} has {v!r}; give numbers >= 0, e.g. 0,5e-4.") from None
        if not math.isfinite(x) or x < 0:
            raise ValueError(f"--{flag} has {v!r}; every value must be a finite number >= 0.")
        out.append(x)
    if len(set(out)) != len(out):
        raise ValueError(f"--{flag}={','.join(values)} repeats a value; give each once.")
    return out


def defense_settings(
    weight_decays: Sequence[float] = (), dp_noise_multipliers: Sequence[float] = ()
) -> list[Setting]:
    """The sweep's settings: one per weight decay, then one per DP-SGD noise multiplier.

    A new defense is one more kind of entry: a name, its family and strength, and the
    config keys it sets.
    """
    settings = [
        Setting(f"wd_{wd:g}", "weight_decay", wd, {"weight_decay": wd}) for wd in weight_decays
    ]
    settings += [
        Setting(f"dp_{s:g}", "dp_sgd", s, {"dp_noise_multiplier": s}) for s in dp_noise_multipliers
    ]
    return settings


def mean_of_records(store: store_lib.LogitStore, key: str) -> float | None:
    """The mean over a store's models of a per-model block-record value (e.g.
    "test_accuracy"); None if no record has it."""
    values = [v for r in store.records() for v in r.get("extra", {}).get(key, [])]
    return float(np.mean(values)) if values else None


def setting_configs(base_config: dict, settings: Sequence[Setting]) -> dict[str, dict]:
    """{setting name: its run config}: each setting's changes over `base_config`, with the
    DP defaults filled in, every config checked before anything is trained.

    Raises:
      ValueError, DatasetError: a repeated name or a bad config (naming the value).
    """
    names = [s.name for s in settings]
    if len(set(names)) != len(names):
        raise ValueError(f"Settings repeat a name: {names}.")
    configs = {}
    for s in settings:
        keys = {k: v for k, v in {**base_config, **s.changes}.items() if k != "dataset"}
        config = train_shadows.make_config(base_config["dataset"], **keys)  # + DP defaults
        run.check_config(config)
        if run.config_option(config, "dp_noise_multiplier") is not None:
            dpsgd.check_dp_settings(
                *(
                    run.config_option(config, k)
                    for k in ("dp_noise_multiplier", "dp_clip_norm", "dp_delta")
                )
            )
        configs[s.name] = config
    return configs


def label_only_sweep(
    base_config: dict,
    workdir: str | Path,
    settings: Sequence[Setting],
    *,
    exposures: Sequence[str] = EXPOSURES,
    data_dir: str | None = None,
    train_kwargs: dict | None = None,
    attack_kwargs: dict | None = None,
    log: Callable[[str], None] = logging.info,
) -> dict:
    """Trains (or reuses) one store per setting, attacks each, writes results/label_only.*.

    Args:
      base_config: a run config (`train_shadows.make_config`); each setting's changes are
        applied over it.
      workdir: run directory; setting s trains into ``workdir/s.name``, the combined
        results go to ``workdir/results``.
      settings: `defense_settings(...)`, in table order.
      exposures: "logits" and/or "labels" (confidence masking), for every setting.
      data_dir: as in `train_shadows`.
      train_kwargs: other keyword arguments of `lira_jax.train.run.train_shadows`
        (models_per_step, conv_impl, compute_dtype, logits_dtype, checkpoint_every);
        ``save_params`` is always True.
      attack_kwargs: keyword arguments of `experiments.attack.attack` (attacks,
        num_targets, query, num_bootstrap, seed, ...); ``exposure`` is set here.
      log: progress lines.

    Returns:
      The dict written to label_only.json: {"config": the base config, "settings": one
      entry per (setting, exposure) — name, defense, strength, exposure, workdir, config
      changes, mean train/test accuracy of the models, and "results" {attack: entry}}.

    Raises:
      ValueError, DatasetError, StoreError: bad input, before any store is written.
    """
    if not settings:
        raise ValueError("No setting to train: give --weight_decays and/or --dp_noise_multipliers.")
    exposures = list(dict.fromkeys(exposures))
    bad = [e for e in exposures if e not in EXPOSURES]
    if bad or not exposures:
        raise ValueError(f"--exposures={','.join(exposures)} must be some of {EXPOSURES}.")
    attack_kwargs = dict(attack_kwargs or {})
    if "exposure" in attack_kwargs and attack_kwargs.pop("exposure") != "logits":
        raise ValueError(
            "experiments.label_only attacks every store under each of --exposures; give "
            "--exposures instead of --exposure."
        )
    attack_bin.attack_names(attack_kwargs.get("attacks", "all"))
    configs = setting_configs(base_config, settings)
    train_kwargs = {**(train_kwargs or {}), "save_params": True}
    workdir = Path(workdir)
    entries = []
    for s in settings:
        sub = workdir / s.name
        log(f"{s.name}: store {sub / 'store'}")
        store = run.train_shadows(configs[s.name], sub, data_dir=data_dir, log=log, **train_kwargs)
        results = attack_bin.attack(sub, exposure="logits", log=log, **attack_kwargs)
        common = {
            "name": s.name,
            "defense": s.defense,
            "strength": s.strength,
            "workdir": s.name,
            "changes": s.changes,
            "train_accuracy": mean_of_records(store, "train_accuracy"),
            "test_accuracy": mean_of_records(store, "test_accuracy"),
        }
        for exposure in exposures:
            view = results if exposure == "logits" else label_exposure(results)
            entries.append({**common, "exposure": exposure, "results": view})
    out = {"config": base_config, "settings": entries}
    results_dir = workdir / "results"
    store_lib.write_text_atomic(
        results_dir / "label_only.json", json.dumps(out, indent=2, default=float) + "\n"
    )
    title = (
        f"{base_config['dataset']} / {base_config['arch']}: {base_config['num_models']} models, "
        f"queries {base_config['queries']}"
    )
    tables = defense_report.defense_tables(entries)
    store_lib.write_text_atomic(
        results_dir / "label_only.md",
        f"# Label-only and score-based attacks under defenses: {title}\n\n{tables}",
    )
    defense_report.plot_defenses(entries, results_dir / "label_only.png", title=title)
    print(tables)
    log(f"Wrote {results_dir / 'label_only.json'}, label_only.md and label_only.png")
    return out


def run_from_flags() -> None:
    overrides = train_shadows.flag_overrides()
    if overrides["dp_noise_multiplier"] is not None:
        raise ValueError(
            "experiments.label_only sets dp_noise_multiplier per setting: give "
            "--dp_noise_multipliers instead of --dp_noise_multiplier."
        )
    settings = defense_settings(
        parse_values(_WEIGHT_DECAYS.value, "weight_decays"),
        parse_values(_DP_NOISE_MULTIPLIERS.value, "dp_noise_multipliers"),
    )
    kwargs = train_shadows.run_kwargs_from_flags()
    data_dir = kwargs.pop("data_dir")
    kwargs.pop("save_params")
    label_only_sweep(
        train_shadows.config_from_flags(),
        flagdefs.WORKDIR.value,
        settings,
        exposures=_EXPOSURES.value,
        data_dir=data_dir,
        train_kwargs=kwargs,
        attack_kwargs=attack_bin.attack_kwargs_from_flags(),
    )


main = flagdefs.main_for(run_from_flags, trains=True)


if __name__ == "__main__":
    app.run(main)

r"""DP-SGD audited, not only accounted: empirical ε lower bounds beside the accountant's ε.

    python -m experiments.dp_audit --workdir=runs/dp_audit_digits \
        --noise_multipliers=0.5,1,2 --audit_canaries=200 --audit_canary_kind=mislabeled \
        --num_models=16 --epochs=20 --learning_rate=0.1
    # -> runs/dp_audit_digits/nonprivate/, dp_0.5/, dp_1/, dp_2/ (one store each),
    #    results/dp_audit.json, dp_audit.md, dp_audit.png, dp_audit_scores.npz; prints the
    #    table: every DP-SGD bound 0.00 against the accountant's 4.13 / 12.14 / 51.30,
    #    non-private 1.05 (LiRA online); 22 min on 2 shared CPU cores (docs/results.md,
    #    "DP auditing")

Settings: the non-private run (plain SGD, `--nonprivate`, on by default) and one DP-SGD
store per `--noise_multipliers` value σ (clip norm, δ and accountant from `--dp_clip_norm`,
`--dp_delta`, `--dp_accountant`), each trained through the library
(`lira_jax.train.run.train_shadows`) into ``WORKDIR/<setting>/`` (``nonprivate``,
``dp_<σ>``), resumable and verifiable on its own; the same seed gives every setting the
same keep mask, canaries and initialisations. Every `experiments.train_shadows` flag sets
the base config; `--audit_canaries=K --audit_canary_kind=...` plants worst-case canaries,
without them every example is audited.

Each store is attacked with `--attacks` (default lira_online,global_threshold; the
registered attacks of `lira_jax.attacks.ATTACKS`), each of the first `--num_targets`
models (0: all) in turn the target, and `lira_jax.dp_audit.audit_scores` turns the scores
of the audited examples into ε lower bounds at confidence 1 − `--significance` and δ =
the run's dp_delta (the non-private run: `--dp_delta`, default 1e-5), beside the
accountant's ε. Outputs in ``WORKDIR/results/``:

  * ``dp_audit.json``: {"config": base config, "significance", "entries": one per
    (setting, attack): "setting", "noise_multiplier" (null: non-private), "attack",
    "workdir", "canary_kind" ("all examples" without canaries), train / test accuracy,
    and `audit_scores`'s figures ("accountant_epsilon" null when non-private,
    "epsilon_lower_multi_model", "epsilon_lower_one_run_{mean,max}",
    "epsilon_lower_one_run_fdp_{mean,max}", "tpr_at_fpr", "auc", "auc_ci", "violations",
    "violation", ...)}; an attack undefined on a store gives {"undefined": true, "reason"};
  * ``dp_audit.md`` (the printed table) and ``dp_audit.png`` (bounds against the
    accountant's ε, with y = x);
  * ``dp_audit_scores.npz``: for every defined entry, the IN and OUT scores that entered
    its multi-model bound, under ``<setting>__<attack>__in`` and ``<setting>__<attack>__out``
    (float64, target-major): `jax_privacy.auditing.CanaryScoreAuditor(in, out)` recomputes
    the bound.

A bound above the accountant's ε (`lira_jax.dp_audit.BOUND_KEYS`) is a violation: it is
printed loudly, after every output is written, and the process exits with status 1.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from absl import app, flags, logging

from experiments import configs as config_defaults
from experiments import flagdefs, label_only, train_shadows
from lira_jax import dp_audit
from lira_jax import store as store_lib
from lira_jax.attacks import ATTACKS, AttackUndefined, exposed_bank, resolve_attacks
from lira_jax.report import dp_audit as report
from lira_jax.train import run

__all__ = ["audit_store", "audit_settings", "dp_audit_sweep"]

DEFAULT_ATTACKS = "lira_online,global_threshold"
_DP_KEYS = ("dp_clip_norm", "dp_delta", "dp_accountant")
# experiments.label_only's flags, defined here by importing it: refused, not ignored.
_FOREIGN_FLAGS = {
    "dp_noise_multipliers": "--noise_multipliers",
    "weight_decays": "--weight_decay (one value)",
    "exposures": "experiments.label_only",
}

_NOISE_MULTIPLIERS = flags.DEFINE_list(
    "noise_multipliers",
    ["0.5", "1", "2"],
    "DP-SGD settings of the audit: one store per noise multiplier sigma (empty: none).",
)
_NONPRIVATE = flags.DEFINE_bool(
    "nonprivate", True, "Also train and audit the non-private run (plain SGD)."
)
_SIGNIFICANCE = flags.DEFINE_float(
    "significance",
    dp_audit.DEFAULT_SIGNIFICANCE,
    "1 - confidence of every epsilon lower bound, in (0, 0.5).",
)


def audit_settings(noise_multipliers: Sequence[float], nonprivate: bool = True) -> list:
    """The sweep's settings (`experiments.label_only.Setting`): ``nonprivate`` (no config
    change; defense "none"), then ``dp_<σ>`` per noise multiplier."""
    settings = [label_only.Setting("nonprivate", "none", 0.0, {})] if nonprivate else []
    return settings + label_only.defense_settings(dp_noise_multipliers=noise_multipliers)


def _accountant(store: store_lib.LogitStore) -> dict | None:
    """The privacy spent recorded with the store's blocks (None: non-private)."""
    found = [r["extra"]["privacy"] for r in store.records() if "privacy" in r.get("extra", {})]
    if not found:
        return None
    if any(p != found[0] for p in found):
        raise ValueError(f"The blocks of {store.path} record different privacy spent: {found}.")
    return found[0]


def audit_store(
    workdir: str | Path,
    attacks: str | Sequence[str] = DEFAULT_ATTACKS,
    *,
    num_targets: int = 0,
    significance: float = dp_audit.DEFAULT_SIGNIFICANCE,
    delta: float | None = None,
    num_bootstrap: int = 0,
    seed: int = 0,
    log: Callable[[str], None] = logging.info,
) -> tuple[list[dict], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Audits one complete store: every attack's ε lower bounds on its audited examples.

    Args:
      workdir: run directory (``workdir/store``).
      attacks: names accepted by `lira_jax.attacks.resolve_attacks`.
      num_targets: models 0 .. num_targets − 1 serve in turn as the target (0: all).
      significance: 1 − confidence of the bounds.
      delta: δ of a non-private store's bounds (default `configs.DP_DEFAULTS`); a DP-SGD
        store's own δ is always used.
      num_bootstrap: resamples of the AUC's interval (0: none).
      seed: seed of the attacks' shadow sets and of the bootstrap.
      log: progress lines.

    Returns:
      (entries: one per attack, `dp_audit.audit_scores`'s dict plus "attack",
      "canary_kind", "one_run_note" (why one-run bounds are missing, or None); or
      {"attack", "undefined": True, "reason"}), {attack: (IN scores, OUT scores)}.

    Raises:
      StoreError: no complete store. ValueError: bad attacks, targets or levels.
    """
    store = store_lib.open_store(Path(workdir) / "store", complete=True)
    num_targets = num_targets or store.num_models
    if not 1 <= num_targets <= store.num_models:
        raise ValueError(
            f"--num_targets={num_targets} must be between 1 and the number of models "
            f"{store.num_models} (0: all)."
        )
    names = resolve_attacks(attacks)
    privacy = _accountant(store)
    if privacy is None:
        accountant_eps = None
        delta = config_defaults.DP_DEFAULTS["dp_delta"] if delta is None else delta
    else:
        accountant_eps = math.inf if privacy["epsilon"] == "inf" else float(privacy["epsilon"])
        delta = float(privacy["delta"])
    if store.has_array("audit_canary"):
        canary = store.read_array("audit_canary")
        kind = run.config_option(store.config, "audit_canary_kind")
    else:
        canary, kind = np.ones(store.num_examples, bool), "all examples"
    one_run_note = None
    if store.config["pkeep"] != 0.5:
        one_run_note = f"pkeep={store.config['pkeep']}: the one-run bounds need pkeep = 0.5"
    keep = store.keep()
    needs = {s for n in names for s in ATTACKS[n].needs}
    bank = exposed_bank(store_lib.LazyLogits(store), store.labels(), keep, needs, log=log)
    targets = np.arange(num_targets)
    entries, scores = [], {}
    for name in names:
        try:
            output = ATTACKS[name].fn(bank, targets, seed=seed)
            num_nan = int(np.isnan(np.asarray(output.scores, np.float64)[:, canary]).sum())
            if num_nan:
                raise AttackUndefined(f"{name} produced {num_nan} NaN score(s).")
        except AttackUndefined as e:
            entries.append({"attack": name, "undefined": True, "reason": str(e)})
            log(f"{name}: undefined ({e})")
            continue
        entry, pooled = dp_audit.audit_scores(
            output.scores,
            keep[targets],
            canary,
            delta=delta,
            accountant_epsilon=accountant_eps,
            significance=significance,
            num_bootstrap=num_bootstrap,
            seed=seed,
            one_run=one_run_note is None,
        )
        entries.append({"attack": name, "canary_kind": kind, "one_run_note": one_run_note, **entry})
        scores[name] = pooled
        log(
            f"{name}: ε LB multi-model {entry['epsilon_lower_multi_model']:.3f}, accountant "
            f"ε {entry['accountant_epsilon']}, AUC {entry['auc']:.3f}"
        )
    return entries, scores


def _violation_lines(entries: Sequence[dict]) -> list[str]:
    return [
        f"DP-SGD AUDIT VIOLATION: {e['setting']} / {e['attack']}: "
        + ", ".join(f"{k} = {e[k]:.4f}" for k in e["violations"])
        + f" > accountant's ε = {e['accountant_epsilon']:.4f} (δ = {e['delta']:g}). The "
        "clipping, the noise, the sampling or the accounting is broken."
        for e in entries
        if e.get("violation")
    ]


def dp_audit_sweep(
    base_config: dict,
    workdir: str | Path,
    settings: Sequence,
    *,
    attacks: str | Sequence[str] = DEFAULT_ATTACKS,
    num_targets: int = 0,
    significance: float = dp_audit.DEFAULT_SIGNIFICANCE,
    num_bootstrap: int = 0,
    seed: int = 0,
    data_dir: str | None = None,
    train_kwargs: dict | None = None,
    log: Callable[[str], None] = logging.info,
) -> dict:
    """Trains (or reuses) one store per setting, audits each, writes results/dp_audit.*.

    Args:
      base_config: a run config (`train_shadows.make_config`) without DP-SGD; each
        setting's changes are applied over it.
      workdir: run directory; setting s trains into ``workdir/s.name``.
      settings: `audit_settings(...)`, in table order.
      attacks, num_targets, significance, num_bootstrap, seed: as in `audit_store`.
      data_dir: as in `train_shadows`.
      train_kwargs: other keyword arguments of `lira_jax.train.run.train_shadows`.
      log: progress lines.

    Returns:
      The dict written to dp_audit.json (see the module docstring); violations are in its
      entries ("violation"), and printed.

    Raises:
      ValueError, DatasetError, StoreError: bad input, before any store is written.
    """
    if not settings:
        raise ValueError("No setting to audit: give --noise_multipliers and/or --nonprivate.")
    if not 0.0 < significance < 0.5:
        raise ValueError(f"--significance={significance} must be in (0, 0.5), e.g. 0.05.")
    if run.config_option(base_config, "dp_noise_multiplier") is not None:
        raise ValueError(
            "experiments.dp_audit sets the noise multiplier per setting: give "
            "--noise_multipliers (and --nonprivate) instead of --dp_noise_multiplier."
        )
    resolve_attacks(attacks)
    if len({s.name for s in settings}) != len(settings):
        raise ValueError(f"Settings repeat a name: {[s.name for s in settings]}.")
    # The non-private run keeps none of the DP-SGD keys (clip norm, δ, accountant).
    plain = {k: v for k, v in base_config.items() if k not in _DP_KEYS}
    configs = {}
    for s in settings:  # every config checked before anything is trained
        base = base_config if "dp_noise_multiplier" in s.changes else plain
        configs.update(label_only.setting_configs(base, [s]))
    delta = base_config.get("dp_delta") or config_defaults.DP_DEFAULTS["dp_delta"]
    workdir = Path(workdir)
    entries, arrays = [], {}
    for s in settings:
        sub = workdir / s.name
        log(f"{s.name}: store {sub / 'store'}")
        store = run.train_shadows(
            configs[s.name], sub, data_dir=data_dir, log=log, **(train_kwargs or {})
        )
        found, scores = audit_store(
            sub,
            attacks,
            num_targets=num_targets,
            significance=significance,
            delta=delta,
            num_bootstrap=num_bootstrap,
            seed=seed,
            log=log,
        )
        common = {
            "setting": s.name,
            "noise_multiplier": s.changes.get("dp_noise_multiplier"),
            "workdir": s.name,
            "train_accuracy": label_only.mean_of_records(store, "train_accuracy"),
            "test_accuracy": label_only.mean_of_records(store, "test_accuracy"),
        }
        entries += [{**common, **e} for e in found]
        for attack, (ins, outs) in scores.items():
            arrays[f"{s.name}__{attack}__in"] = ins
            arrays[f"{s.name}__{attack}__out"] = outs
    out = {"config": base_config, "significance": significance, "entries": entries}
    results = workdir / "results"
    store_lib.write_text_atomic(
        results / "dp_audit.json", json.dumps(out, indent=2, default=float) + "\n"
    )
    store_lib.write_arrays_atomic(results / "dp_audit_scores.npz", arrays)
    kind = next((e["canary_kind"] for e in entries if "canary_kind" in e), "all examples")
    title = (
        f"{base_config['dataset']} / {base_config['arch']}: {base_config['num_models']} models, "
        f"{base_config['epochs']} epochs, canaries: {kind}"
    )
    table = report.audit_table(entries)
    store_lib.write_text_atomic(results / "dp_audit.md", f"# DP audit: {title}\n\n{table}")
    report.plot_audit(entries, results / "dp_audit.png", title=title)
    print(table)
    log(f"Wrote {results / 'dp_audit.json'}, dp_audit.md, dp_audit.png, dp_audit_scores.npz")
    lines = _violation_lines(entries)
    if lines:
        bar = "!" * 78
        print("\n".join([bar, *lines, bar]), file=sys.stderr)
    return out


def run_from_flags() -> None:
    for name, instead in _FOREIGN_FLAGS.items():
        if flags.FLAGS[name].present:
            raise ValueError(
                f"--{name} belongs to experiments.label_only and does nothing here; use {instead}."
            )
    settings = audit_settings(
        label_only.parse_values(_NOISE_MULTIPLIERS.value, "noise_multipliers"),
        _NONPRIVATE.value,
    )
    kwargs = train_shadows.run_kwargs_from_flags()
    data_dir = kwargs.pop("data_dir")
    out = dp_audit_sweep(
        train_shadows.config_from_flags(),
        flagdefs.WORKDIR.value,
        settings,
        attacks=flagdefs.ATTACKS.value,
        num_targets=flagdefs.NUM_TARGETS.value,
        significance=_SIGNIFICANCE.value,
        num_bootstrap=flagdefs.NUM_BOOTSTRAP.value,
        seed=flagdefs.ATTACK_SEED.value,
        data_dir=data_dir,
        train_kwargs=kwargs,
    )
    if any(e.get("violation") for e in out["entries"]):
        sys.exit(1)


main = flagdefs.main_for(run_from_flags, trains=True)


if __name__ == "__main__":
    flagdefs.set_defaults(attacks=DEFAULT_ATTACKS)
    app.run(main)

"""The label-only attacks that query the models, on a training run: what they need, and
their inputs computed from the run.

Design notes: `label_only_boundary` (HopSkipJump distances, `boundary`) and
`label_only_transfer` (shadows trained on the targets' labels of the test split,
`transfer`) need more than the store's logits on the pool:

  * boundary: the target models themselves, i.e. their saved parameters (`train_shadows
    --save_params`), and the pool's inputs (the run's dataset);
  * transfer: the targets' predicted labels on the dataset's test split — the argmax of
    the store's test logits (`--store_test_logits`) or, failing those, of the saved
    models' outputs — and the run's training recipe for the attacker's shadows.

`missing_inputs` says, from the store's records alone, which of the two a run cannot
support and why (so "all" can skip them and naming one gives one clear error);
`evaluate_querying` computes their inputs and evaluates them with `evaluate_signals`
(registry entries whose functions carry the inputs), on the attacked targets and
examples.

Both attacks cost per target (a HopSkipJump search per example, a shadow model), so they
run on the first `QueryOptions.num_targets` of the evaluation's targets; the boundary
attack optionally on the first `num_examples` examples of the pool. The other distance
models (the other targets) calibrate the boundary attack's shadow threshold.

What the attacker sees stays labels only: HopSkipJump reads `argmax` of the model's
outputs, the transfer attack the argmax of the targets' logits; the attacker's own shadow
model's loss is the attacker's to read. The transfer shadows use the run's recipe
(architecture, optimiser, schedule, augmentation, weight decay) without DP-SGD noise: the
attacker trains a plain model.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from lira_jax import metrics
from lira_jax import store as store_lib
from lira_jax.attacks.bank import SignalBank
from lira_jax.attacks.evaluate import Attack, evaluate_signals
from lira_jax.attacks.label_only import QUERYING_ATTACKS
from lira_jax.attacks.label_only.boundary import (
    BoundaryDistances,
    HSJConfig,
    boundary_attack,
    clip_range,
    hsj_distances,
    random_inputs,
)
from lira_jax.attacks.label_only.labels import predicted_labels
from lira_jax.attacks.label_only.transfer import transfer_attack, transfer_shadow_losses
from lira_jax.data import audit_canaries, augment, datasets
from lira_jax.data.tasks import apply_task
from lira_jax.train import params as params_lib
from lira_jax.train.engine import TrainConfig
from lira_jax.train.query import query_logits

__all__ = [
    "QUERYING_ATTACKS",
    "QueryOptions",
    "boundary_inputs",
    "evaluate_querying",
    "missing_inputs",
    "run_dataset",
]

_LABEL_SIGNALS = ("predicted", "labels")


@dataclasses.dataclass(frozen=True)
class QueryOptions:
    """How the attacks that query models run.

    Attributes:
      num_targets: attack the first K of the evaluation's targets (0: all of them).
      num_examples: the boundary attack's examples, the first n of the pool (0: all).
      hsj: HopSkipJump's budget and layout.
      num_random: random inputs for Li & Zhang's unsupervised threshold (0: none).
      percentile: the percentile of random-input distances used as that threshold.
      num_aux: the transfer attack's auxiliary set, the first n of the test split (0: all;
        each target's shadow trains on it, so the cost is K × n).
      data_dir: where the run's dataset is read (as for `train_shadows`).
    """

    num_targets: int = 8
    num_examples: int = 0
    hsj: HSJConfig = HSJConfig()
    num_random: int = 100
    percentile: float = 50.0
    num_aux: int = 0
    data_dir: str | None = None

    def validate(self) -> None:
        counts = ("num_targets", "num_examples", "num_random", "num_aux")
        if any(getattr(self, c) < 0 for c in counts):
            raise ValueError(
                ", ".join(f"{c}={getattr(self, c)}" for c in counts)
                + " must be >= 0 (0: all / none)."
            )
        if not 0 <= self.percentile <= 100:
            raise ValueError(f"percentile={self.percentile} must be in [0, 100].")
        self.hsj.validate()

    def targets(self, num_targets: int) -> int:
        """How many targets the querying attacks attack, of an evaluation's num_targets."""
        return min(self.num_targets, num_targets) if self.num_targets else num_targets


def missing_inputs(store: store_lib.LogitStore, num_targets: int) -> dict[str, str]:
    """Which querying attacks a run cannot support, from its store's records.

    Args:
      store: the run's store.
      num_targets: K, the number of targets the querying attacks would attack (0 .. K−1).

    Returns:
      {attack name: what is missing and the flag that provides it}, for the attacks of
      `QUERYING_ATTACKS` that cannot run; the others are absent.
    """
    saved = params_lib.saved_models(store)[:num_targets]
    unsaved = np.flatnonzero(~saved).tolist()
    missing = {}
    if unsaved:
        missing["label_only_boundary"] = (
            f"needs the target models' parameters, which were not saved for model(s) "
            f"{unsaved[:8]}: train with `python -m experiments.train_shadows --save_params`"
        )
    if not store.has_array("test_logits") and unsaved:
        missing["label_only_transfer"] = (
            "needs the targets' labels on the dataset's test split: train with "
            "`python -m experiments.train_shadows --store_test_logits` (or --save_params)"
        )
    return missing


def run_dataset(store: store_lib.LogitStore, data_dir: str | None) -> datasets.Dataset:
    """The run's dataset (with its task), checked to be the store's pool (labels, size).

    Raises:
      DatasetError: the dataset cannot be read (`data_dir`).
      ValueError: the store's pool is not the dataset's training split (e.g. a mixture),
        so its inputs cannot be recovered here.
    """
    config = store.config
    ds = datasets.load_dataset(
        config["dataset"],
        data_dir,
        config.get("max_train"),
        expected_sha256=config.get("dataset_sha256"),
    )
    ds = apply_task(ds, config.get("task", "all"))
    ds, _ = audit_canaries.plant_for_config(ds, config)
    if ds.x_train.shape[0] != store.num_examples or not np.array_equal(ds.y_train, store.labels()):
        raise ValueError(
            f"The pool of {store.path} ({store.num_examples} examples) is not the training "
            f"split of {config['dataset']!r} (max_train={config.get('max_train')}), so the "
            "attacks that query models cannot rebuild its inputs; run the other attacks."
        )
    return ds


def _attacker_train_config(config: dict, num_classes: int) -> TrainConfig:
    """The run's recipe for the attacker's shadows (no DP-SGD; see the module docstring)."""
    return dataclasses.replace(
        TrainConfig.from_run_config(config, num_classes),
        dp_noise_multiplier=None,
        dp_clip_norm=None,
        dp_delta=None,
    )


def _aux_labels(workdir, store, dataset, targets: np.ndarray) -> np.ndarray:
    """[K, N_test] the targets' predicted labels of the test split (labels only)."""
    if store.has_array("test_logits"):
        return predicted_labels(store.read_test_logits(models=targets)).astype(np.int32)
    saved = params_lib.load_params(workdir, targets)
    identity = (augment.Query(False, 0, 0),)
    logits = query_logits(saved.model, saved.params, dataset.x_test, identity)[:, :, 0]
    return predicted_labels(logits).astype(np.int32)


def boundary_inputs(
    workdir: str | Path,
    dataset: datasets.Dataset,
    targets: np.ndarray,
    options: QueryOptions,
    *,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> tuple[BoundaryDistances, BoundaryDistances | None]:
    """HopSkipJump distances of the targets on the pool (true labels) and on random inputs.

    Returns:
      (distances [K, n], random-input distances [K, num_random] or None).
    """
    saved = params_lib.load_params(workdir, targets)
    n = options.num_examples or dataset.x_train.shape[0]
    x, y = dataset.x_train[:n], dataset.y_train[:n]
    lo, hi = clip_range(dataset.x_train)
    common = dict(
        clip_min=lo, clip_max=hi, config=options.hsj, seed=seed, model_indices=targets, log=log
    )
    distances = hsj_distances(saved.model, saved.params, x, y, **common)
    rand = None
    if options.num_random:
        rx = random_inputs(options.num_random, x.shape[1:], lo, hi, seed)
        rand = hsj_distances(saved.model, saved.params, rx, None, **common)
    return distances, rand


def _sub_bank(bank, num_examples: int) -> SignalBank:
    """The labels-only part of a bank, cut to its first n examples."""
    return SignalBank(
        keep=bank.keep[:, :num_examples],
        predicted=bank.predicted[:, :num_examples],
        labels=bank.labels[:num_examples],
    )


def evaluate_querying(
    workdir: str | Path,
    store: store_lib.LogitStore,
    bank: SignalBank,
    names: Sequence[str],
    num_targets: int,
    options: QueryOptions,
    *,
    groups: np.ndarray | None = None,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
    **evaluate_kwargs,
) -> tuple[dict[str, dict], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Computes the named querying attacks' inputs and evaluates them like the others.

    Args:
      workdir: the run directory (store/ and params/).
      store: its store.
      bank: the run's `SignalBank` (its predicted labels and keep mask are read).
      names: attacks of `QUERYING_ATTACKS`.
      num_targets: the evaluation's targets; the first `options.targets(num_targets)`
        are attacked.
      options: `QueryOptions`.
      groups: the evaluation's groups ([N] or [T, N]), cut to the attacked targets and
        examples.
      seed: seed of the searches, the transfer shadows and the evaluation.
      log: progress callback.
      **evaluate_kwargs: the other keyword arguments of `evaluate_signals` (group_names,
        num_bootstrap, level, fpr_levels, exposure).

    Returns:
      (results, curves) as `evaluate_signals`; "num_targets" and "num_examples" of each
      entry say on which targets and examples it ran. The boundary entry's details add
      "random_threshold_operating_point" (Li & Zhang's threshold) when random inputs were
      used.

    Raises:
      ValueError: an unknown name, a named attack whose inputs the run lacks (the message
        names the flag), or a pool that is not the dataset's training split.
    """
    options.validate()
    unknown = sorted(set(names) - set(QUERYING_ATTACKS))
    if unknown:
        raise ValueError(f"Unknown querying attack(s) {unknown}; valid: {list(QUERYING_ATTACKS)}.")
    k = options.targets(num_targets)
    missing = missing_inputs(store, k)
    lacking = [f"{n} {missing[n]}" for n in names if n in missing]
    if lacking:
        raise ValueError("; ".join(lacking) + ".")
    if "label_only_boundary" in names and k < 2 and not options.num_random:
        raise ValueError(
            "label_only_boundary with one target has no threshold: attack at least 2 targets "
            "(the others calibrate it) or use random inputs (num_random > 0)."
        )
    results, curves = {}, {}
    if not names:
        return results, curves
    dataset = run_dataset(store, options.data_dir)
    targets = np.arange(k)
    for name in names:
        n = store.num_examples
        if name == "label_only_boundary":
            n = min(options.num_examples or n, n)
            distances, rand = boundary_inputs(
                workdir, dataset, targets, options, seed=seed, log=log
            )
            fn = functools.partial(
                boundary_attack,
                distances=distances,
                random_distances=rand,
                threshold="shadow" if k >= 2 else "random",
                percentile=options.percentile,
            )
        else:
            if dataset.x_test.shape[0] == 0:
                raise ValueError(
                    f"label_only_transfer needs the dataset's test split; {dataset.name!r} "
                    "has none."
                )
            num_aux = min(options.num_aux or dataset.x_test.shape[0], dataset.x_test.shape[0])
            aux = _aux_labels(workdir, store, dataset, targets)[:, :num_aux]
            if log is not None:
                log(f"transfer: training {k} shadow(s) on {num_aux} relabelled test inputs")
            losses = transfer_shadow_losses(
                _attacker_train_config(store.config, store.num_classes),
                dataset.x_test[:num_aux],
                aux,
                dataset.x_train,
                dataset.y_train,
                seed=seed,
            )
            fn = functools.partial(transfer_attack, shadow_losses=losses)
        registry = {name: Attack(fn, _LABEL_SIGNALS, QUERYING_ATTACKS[name])}
        sub = _sub_bank(bank, n)
        sub_groups = None
        if groups is not None:
            sub_groups = np.asarray(groups)[..., :n]
            sub_groups = sub_groups[:k] if sub_groups.ndim == 2 else sub_groups
        res, curve = evaluate_signals(
            sub,
            [name],
            k,
            groups=sub_groups,
            seed=seed,
            log=log,
            registry=registry,
            **evaluate_kwargs,
        )
        entry = res[name]
        if (
            name == "label_only_boundary"
            and k >= 2
            and rand is not None
            and not entry.get("undefined")
        ):
            out = boundary_attack(
                sub,
                targets,
                distances=distances,
                random_distances=rand,
                threshold="random",
                percentile=options.percentile,
            )
            decisions = (out.scores >= out.threshold).ravel()
            entry.setdefault("details", {})["random_threshold_operating_point"] = (
                metrics.operating_point(decisions, sub.keep[targets].ravel())
            )
        results.update(res)
        curves.update(curve)
    return results, curves

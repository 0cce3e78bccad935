"""The membership pool of a run: a dataset, or a mixture with an under-represented group.

    pool = load_pool(config, data_dir)   # config: experiments.train_shadows.make_config

With ``config["mixture"]`` unset or ``"none"`` the pool is the dataset (`load_dataset`).
Otherwise it is a `lira_jax.data.mixtures` mixture of the base dataset (``dataset``, its
first ``max_train`` training examples) with ``ood_size`` examples of an OOD source
(``ood_dataset``), chosen by the ``mixture`` rule (config keys in `MIXTURE_KEYS`):

  * OOD sources: ``digits`` (scikit-learn's 8×8 digits, resized to the base's size:
    semantic OOD next to Fashion-MNIST), ``aug`` (AugMix-style corruptions, severity
    ``augmix_severity``, of base training examples *outside* the pool: covariate shift,
    never a corrupted copy of a pool member), or any registry dataset (tfds names such as
    ``svhn_cropped`` or ``cifar10`` when prepared), converted to the base's size and
    channels; labels are kept (class k → label k).
  * ``random``: a class-balanced random subset R of the source (``ood_size`` examples).
  * ``subpopulation``: the smallest of ``num_clusters`` KMeans clusters of R after PCA to
    ``pca_dims``, in the penultimate-layer features of one model of the run's
    architecture and recipe trained on the whole base (model index 0 of the run's seed).
  * ``singletons``: the members of R whose Feldman–Zhang memorization, estimated from the
    complete store of a ``random`` run at ``singleton_workdir`` (same base, source, size
    and seed), exceeds ``singleton_threshold``; examples are mapped back through that
    store's ``source_index``.

The pool is standardised once, after mixing, with its own mean and std (the test split,
the base's, with the same statistics). Groups are ``over_represented`` (0) and
``under_represented`` (1); the store records them (``groups``, ``source_index``).

A user's file (``dataset="npz:PATH"``) is checked against ``config["dataset_sha256"]`` when
the config has it (a store's config does): a file that changed is refused.

Design notes: everything is a pure function of the config (and, for singletons, of the
first store, whose config is checked), so every job and re-run builds the same pool.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import numpy as np

from lira_jax.data import audit_canaries, datasets, mixtures, tasks
from lira_jax.data.datasets import Dataset, DatasetError

__all__ = [
    "MIXTURE_DEFAULTS",
    "MIXTURE_KEYS",
    "OOD_SOURCES",
    "Pool",
    "load_pool",
    "load_store_dataset",
    "store_dataset",
]

OOD_SOURCES = ("digits", "aug")
# Config keys of a mixture and the values that mean "no mixture" / the paper's choices.
MIXTURE_DEFAULTS = {
    "mixture": "none",
    "ood_dataset": None,
    "ood_size": 500,
    "pca_dims": 10,
    "num_clusters": 5,
    "singleton_threshold": 0.4,
    "singleton_workdir": None,
    "augmix_severity": 3,
}
MIXTURE_KEYS = tuple(MIXTURE_DEFAULTS)


@dataclasses.dataclass(frozen=True)
class Pool:
    """A run's pool.

    Attributes:
      dataset: the standardised `Dataset` (x_train is the pool).
      groups: [N] int32 group of each example, or None (no mixture).
      group_names: names of the group values (empty without a mixture).
      source_index: [N] index of each example in its group's source, or None.
    """

    dataset: Dataset
    groups: np.ndarray | None = None
    group_names: tuple[str, ...] = ()
    source_index: np.ndarray | None = None


def _mixture_config(config: dict) -> dict:
    cfg = {k: config.get(k, v) for k, v in MIXTURE_DEFAULTS.items()}
    if cfg["mixture"] not in mixtures.MIXTURES:
        raise ValueError(f"mixture={cfg['mixture']!r} must be one of {mixtures.MIXTURES}.")
    if cfg["mixture"] == "none":
        return cfg
    if config.get("task", "all") != "all":
        raise ValueError(
            f"task={config['task']!r} cannot be combined with mixture={cfg['mixture']!r}: a task "
            "drops and relabels examples, a mixture records each example's group and source."
        )
    sources = OOD_SOURCES + tuple(n for n in datasets.dataset_names() if n != config["dataset"])
    if cfg["ood_dataset"] not in sources:
        raise ValueError(
            f"ood_dataset={cfg['ood_dataset']!r} must be one of {sources} for a mixture."
        )
    for key in ("ood_size", "pca_dims", "num_clusters"):
        if not isinstance(cfg[key], int) or cfg[key] < 1:
            raise ValueError(f"{key}={cfg[key]!r} must be a positive integer.")
    if cfg["mixture"] == "singletons" and not cfg["singleton_workdir"]:
        raise ValueError(
            "mixture=singletons needs singleton_workdir: the workdir of a complete "
            "mixture=random run with the same dataset, ood_dataset, ood_size and seed."
        )
    return cfg


def _ood_source(config: dict, cfg: dict, base: Dataset, data_dir) -> tuple[np.ndarray, ...]:
    """The OOD source's raw images, in the base's format, and labels."""
    shape = base.x_train.shape[1:]
    if cfg["ood_dataset"] == "aug":
        start = config["max_train"] or base.x_train.shape[0]
        x, y = base.x_train[start:], base.y_train[start:]
        if x.shape[0] < cfg["ood_size"]:
            raise DatasetError(
                f"ood_dataset=aug corrupts base training examples outside the pool, but only "
                f"{x.shape[0]} are left after max_train={config['max_train']}; lower max_train "
                f"or ood_size={cfg['ood_size']}."
            )
        return mixtures.augmix(x, config["seed"], cfg["augmix_severity"]), y
    source = datasets.load_raw(cfg["ood_dataset"], data_dir)
    if source.num_classes < base.num_classes:
        raise DatasetError(
            f"ood_dataset={cfg['ood_dataset']!r} has {source.num_classes} classes, fewer than "
            f"the base's {base.num_classes}: labels cannot be consistent."
        )
    return mixtures.convert_images(source.x_train, shape), source.y_train


def _base_features(config: dict, base: Dataset, x: np.ndarray) -> np.ndarray:
    """Penultimate-layer features of `x` under one model trained on the whole base."""
    from lira_jax.train.engine import Engine, TrainConfig, steps_per_epoch

    train_config = TrainConfig.from_run_config(
        {**config, "dp_noise_multiplier": None}, base.num_classes
    )
    keep = np.ones((1, base.x_train.shape[0]), bool)
    engine = Engine(
        train_config, base.x_train, base.y_train, steps_per_epoch(keep, config["batch_size"])
    )
    params = jax.tree.map(lambda p: p[0], engine.train(np.array([0]), keep))
    features = jax.jit(lambda p, xb: engine.model.apply(p, xb, penultimate=True))
    return np.concatenate(
        [np.asarray(features(params, x[s : s + 512])) for s in range(0, x.shape[0], 512)]
    )


def _singletons(config: dict, cfg: dict, candidates: np.ndarray) -> np.ndarray:
    """Members of `candidates` (OOD source indices) memorized above the threshold in the
    first (random-mixture) store."""
    from lira_jax import memorization
    from lira_jax import store as store_lib

    path = Path(cfg["singleton_workdir"]) / "store"
    first = store_lib.open_store(path, complete=True)
    want = {**config, "mixture": "random", "singleton_workdir": None, "singleton_threshold": None}
    other = {**first.config, "singleton_threshold": None}
    keys = ("dataset", "max_train", "ood_dataset", "ood_size", "seed", "mixture")
    diff = [k for k in keys if other.get(k) != want.get(k)]
    if diff:
        raise ValueError(
            f"singleton_workdir={cfg['singleton_workdir']!r} holds a store whose config differs "
            f"in {diff}; it must be a mixture=random run with the same dataset, max_train, "
            "ood_dataset, ood_size and seed."
        )
    groups, source = first.groups(), first.source_index()
    under = groups == 1
    signals = memorization.memorization_signals(
        first.read_logits(examples=np.flatnonzero(under)), first.labels()[under]
    )
    mem = memorization.memorization(first.keep()[:, under], signals.correct)
    chosen = source[under][mixtures.select_singletons(mem, cfg["singleton_threshold"])]
    if not np.isin(chosen, candidates).all():
        raise ValueError("the first store's OOD examples are not this config's random group.")
    return np.sort(chosen)


def load_pool(config: dict, data_dir: str | None = None) -> Pool:
    """The run's pool (see the module docstring).

    Raises:
      DatasetError, ValueError: bad mixture settings or missing data, with what to do.
    """
    cfg = _mixture_config(config)
    sha = config.get("dataset_sha256")
    if cfg["mixture"] == "none":
        return Pool(
            datasets.load_dataset(
                config["dataset"], data_dir, config["max_train"], expected_sha256=sha
            )
        )
    raw = datasets.load_raw(config["dataset"], data_dir, expected_sha256=sha)
    if raw.tabular:
        raise ValueError(f"mixtures need an image dataset; {raw.name!r} is tabular.")
    n_base = config["max_train"] or raw.x_train.shape[0]
    base = dataclasses.replace(raw, x_train=raw.x_train[:n_base], y_train=raw.y_train[:n_base])
    ood_x, ood_y = _ood_source(config, cfg, raw, data_dir)
    chosen = mixtures.balanced_indices(ood_y, cfg["ood_size"], raw.num_classes, config["seed"])
    if cfg["mixture"] == "subpopulation":
        # The base standardised on its own, the candidates with its statistics.
        seen = datasets.standardise(dataclasses.replace(base, x_test=ood_x[chosen]))
        features = _base_features(config, seen, seen.x_test)
        sub = mixtures.select_subpopulation(
            features, cfg["pca_dims"], cfg["num_clusters"], config["seed"]
        )
        chosen = chosen[sub]
    elif cfg["mixture"] == "singletons":
        chosen = _singletons(config, cfg, chosen)
    mixed = mixtures.mix(base.x_train, base.y_train, ood_x, ood_y, chosen)
    pool = datasets.standardise(dataclasses.replace(raw, x_train=mixed.x, y_train=mixed.y))
    return Pool(pool, mixed.groups, mixtures.GROUP_NAMES, mixed.source_index)


def store_dataset(dataset: Dataset, config: dict) -> tuple[Dataset, np.ndarray | None]:
    """The pool as a run's store holds it: the config's task applied to `dataset` (a pool of
    `load_pool`), then its DP-audit canaries planted (`lira_jax.data.audit_canaries`).

    Returns:
      (the dataset, the [N] bool canary mask or None).
    """
    ds = tasks.apply_task(dataset, config.get("task", "all"))
    return audit_canaries.plant_for_config(ds, config)


def load_store_dataset(config: dict, data_dir: str | None = None) -> Dataset:
    """`store_dataset(load_pool(config, data_dir).dataset, config)`'s dataset: exactly the
    examples and labels a store of `config` was trained and queried on (for readers that
    rebuild its inputs: the query export, the audit's images, the querying attacks)."""
    return store_dataset(load_pool(config, data_dir).dataset, config)[0]

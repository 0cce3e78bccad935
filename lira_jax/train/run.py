"""A training run: the models of a config, in blocks, from the dataset into the store.

    store = run.train_shadows(config, "runs/digits")  # experiments.train_shadows.make_config

The run is a sequence of named phases, the same names the timing line reports at the end
(``phases: startup=… compile=… train=… query=… store_write=… total=…``):

- ``startup``: load and validate the data and config, the keep mask, per-model labels
  (canaries, label-DP) and DP-SGD's privacy, create or open the store, plan the blocks
  still missing (`prepare`);
- ``compile``: compile the block's training epoch (`Engine.compile`; with JAX's persistent
  compilation cache a re-run loads it instead);
- ``train``: train one block (resuming from its checkpoint if a killed job left one);
- ``query``: every model's logits on every pool example under every query, and on the test
  set (`query_block`);
- ``store_write``: the block's logits and its completion record (`write_block`); with
  ``save_params``, first the block's final parameters (`lira_jax.train.params`), whose
  sha256 goes into the record.

Design notes: the run is idempotent. A block is trained only if the store does not have it,
under a claim so that concurrent jobs never train the same block; its checkpoints are
removed only once its completion record exists, and checkpoints of blocks that are
complete (a job killed between the two) are removed at the start of the next run. Nothing a
run writes depends on how it was split into processes or blocks, only on the config.

Config keys added after stores existed (`OPTIONAL_CONFIG`: the task, canaries, label-DP,
DP-SGD, the keep rule, DP-audit canaries) are absent from a config when they are off
(`canonical_config`), so a run with them off has the config, and the fingerprint, of a store
written before they existed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from absl import logging

from lira_jax import failpoints
from lira_jax import store as store_lib
from lira_jax.data import audit_canaries, augment, datasets, membership
from lira_jax.models import arch_names, check_model, get_model, is_arch_name
from lira_jax.train import accounting
from lira_jax.train import params as params_lib
from lira_jax.train.checkpoint import BlockCheckpointer
from lira_jax.train.engine import Engine, TrainConfig, auto_models_per_step, steps_per_epoch
from lira_jax.train.pool import MIXTURE_KEYS, load_pool, store_dataset
from lira_jax.train.query import query_pass

__all__ = [
    "OPTIONAL_CONFIG",
    "PHASES",
    "BlockResult",
    "PhaseClock",
    "RunPlan",
    "blocks_of",
    "canonical_config",
    "check_config",
    "config_option",
    "parse_model_range",
    "prepare",
    "query_block",
    "train_shadows",
    "write_privacy",
]

PHASES = ("startup", "compile", "train", "query", "store_write")

# Config keys that came after the first stores, with their "off" values. A config never
# holds one at its off value (`canonical_config`): absent means off, so old stores reopen.
OPTIONAL_CONFIG = {
    "keep_rule": "balanced",  # membership.KEEP_RULES: "pairs" is balanced over even prefixes
    "task": "all",
    "num_canaries": 0,
    "label_dp_epsilon": None,  # None (or inf, stored as None): no randomized response
    "dp_noise_multiplier": None,  # None: plain SGD
    "dp_clip_norm": None,
    "dp_delta": None,
    "dp_accountant": "pld",
    "dataset_sha256": None,  # npz:PATH datasets: the file's sha256, recorded by `prepare`
    "audit_canaries": 0,  # DP-audit canaries (`lira_jax.data.audit_canaries`); 0: none
    "audit_canary_kind": "mislabeled",
}


def canonical_config(config: dict) -> dict:
    """The stored form of a run config: `OPTIONAL_CONFIG` keys at their off value removed,
    and the mixture keys (`pool.MIXTURE_KEYS`) without a mixture.

    ``label_dp_epsilon`` = inf becomes None (off; canonical JSON has no inf),
    ``dp_accountant`` is dropped without DP-SGD (there is nothing to account), and
    ``audit_canary_kind`` without audit canaries.
    """
    config = dict(config)
    eps = config.get("label_dp_epsilon")
    if isinstance(eps, int | float) and math.isinf(eps) and eps > 0:
        config["label_dp_epsilon"] = None
    if config.get("dp_noise_multiplier") is None:
        config.pop("dp_accountant", None)
    if not config.get("audit_canaries"):
        config.pop("audit_canary_kind", None)
    if config.get("mixture", "none") == "none":
        for key in MIXTURE_KEYS:
            config.pop(key, None)
    return {
        k: v for k, v in config.items() if not (k in OPTIONAL_CONFIG and v == OPTIONAL_CONFIG[k])
    }


def config_option(config: dict, key: str):
    """`config[key]` for an `OPTIONAL_CONFIG` key, its off value when absent."""
    return config.get(key, OPTIONAL_CONFIG[key])


class PhaseClock:
    """Wall-clock seconds spent in each named phase of a run."""

    def __init__(self):
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self._start = time.perf_counter()

    @contextlib.contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        if phase not in self.seconds:
            raise ValueError(f"Unknown phase {phase!r}; phases: {PHASES}.")
        t = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] += time.perf_counter() - t

    def elapsed(self) -> float:
        """Seconds since the clock started."""
        return time.perf_counter() - self._start

    def line(self) -> str:
        """One log line: ``phases: startup=1.2s compile=… total=…s``."""
        parts = [f"{k}={v:.1f}s" for k, v in self.seconds.items()]
        return f"phases: {' '.join(parts)} total={self.elapsed():.1f}s"


def parse_model_range(spec: str | None, num_models: int) -> tuple[int, int]:
    """'START:STOP' (either side may be empty) -> (start, stop) within [0, num_models]."""
    if not spec:
        return 0, num_models
    parts = spec.split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        start = int(parts[0]) if parts[0] else 0
        stop = int(parts[1]) if parts[1] else num_models
    except ValueError:
        raise ValueError(f"--model_range={spec!r} must look like START:STOP, e.g. 0:16.") from None
    if not 0 <= start < stop <= num_models:
        raise ValueError(
            f"--model_range={spec!r} must satisfy 0 <= START < STOP <= num_models={num_models}."
        )
    return start, stop


def blocks_of(models: np.ndarray, size: int) -> list[np.ndarray]:
    """Splits sorted model indices into contiguous runs of at most `size` models."""
    if models.size == 0:
        return []
    runs = np.split(models, np.flatnonzero(np.diff(models) != 1) + 1)
    return [run[i : i + size] for run in runs for i in range(0, len(run), size)]


def check_config(config: dict) -> None:
    """Validates a config's names and numbers that need no data (raises ValueError,
    DatasetError naming the value)."""
    if not datasets.is_dataset_name(config["dataset"]):
        raise datasets.DatasetError(
            f"Unknown dataset {config['dataset']!r}; valid names: {datasets.dataset_names()}, "
            "or npz:PATH for your own arrays."
        )
    if not is_arch_name(config["arch"]):
        raise ValueError(
            f"Unknown arch {config['arch']!r}; valid names: {arch_names()}, or "
            "package.module:Name for your own flax module."
        )
    # Validates num_models / pkeep with a clear message before any data is loaded.
    membership.keep_mask(config["seed"], config["num_models"], 1, config["pkeep"])
    membership.check_keep_rule(
        config_option(config, "keep_rule"), config["num_models"], config["pkeep"]
    )
    k = config_option(config, "num_canaries")
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"num_canaries={k!r} must be an int >= 0 (0: no canaries).")
    membership.label_noise_enabled(k, config_option(config, "label_dp_epsilon"))  # validates ε
    k = config_option(config, "audit_canaries")
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"audit_canaries={k!r} must be an int >= 0 (0: no audit canaries).")
    if config_option(config, "audit_canary_kind") not in audit_canaries.AUDIT_CANARY_KINDS:
        raise ValueError(
            f"audit_canary_kind={config_option(config, 'audit_canary_kind')!r}; choose one of "
            f"{audit_canaries.AUDIT_CANARY_KINDS}."
        )
    if config_option(config, "dp_accountant") not in accounting.ACCOUNTANTS:
        raise ValueError(
            f"dp_accountant={config_option(config, 'dp_accountant')!r}; choose one of "
            f"{accounting.ACCOUNTANTS}."
        )


def _check_same_file(store_path: Path, config: dict) -> None:
    """Refuses to reopen a store whose ``npz:`` data file changed since it was written
    (the generic config-mismatch error would list ``dataset_sha256``; this one says why)."""
    if not (store_path / "zarr.json").exists():
        return
    try:
        old = store_lib.open_store(store_path).config
    except store_lib.StoreError:
        return  # create_or_open reports what is wrong with it
    if old.get("dataset") == config["dataset"] and old.get("dataset_sha256") not in (
        None,
        config["dataset_sha256"],
    ):
        raise datasets.DatasetError(
            f"{config['dataset'][len(datasets.NPZ_PREFIX) :]} changed since the store at "
            f"{store_path} was written (sha256 {old['dataset_sha256'][:12]}... then, "
            f"{config['dataset_sha256'][:12]}... now): its models were trained on other data. "
            "Restore the original file, or use a new --workdir for the new one."
        )


@dataclasses.dataclass
class RunPlan:
    """What `prepare` found: the data, the store, and the blocks still to train.

    Attributes:
      config: the run config (as stored in the store's metadata).
      dataset: the loaded `Dataset`.
      queries: the query set (A queries).
      keep: [M, N] bool keep mask of the whole run.
      train_config: the engine's `TrainConfig`.
      store: the writable store.
      blocks: model-index arrays still to train, in order (empty: nothing to do).
      model_range: the (start, stop) this job is responsible for.
      steps: steps per epoch of every model (`steps_per_epoch(keep, batch_size)`).
      labels: per-model labels (canaries, label-DP), or None when every model trains on
        the dataset's labels.
      privacy: DP-SGD's privacy spent (`accounting.privacy_of_run`), or None without DP-SGD.
    """

    config: dict
    dataset: datasets.Dataset
    queries: tuple[augment.Query, ...]
    keep: np.ndarray
    train_config: TrainConfig
    store: store_lib.LogitStore
    blocks: list[np.ndarray]
    model_range: tuple[int, int]
    steps: int = 0
    labels: membership.ModelLabels | None = None
    privacy: dict | None = None

    @property
    def num_todo(self) -> int:
        return int(sum(len(b) for b in self.blocks))


def prepare(
    config: dict,
    workdir: str | Path,
    *,
    data_dir: str | None = None,
    model_range: str | None = None,
    models_per_step: int | None = None,
    conv_impl: str = "auto",
    compute_dtype: str = "float32",
    logits_dtype: str = "float32",
) -> RunPlan:
    """The startup phase: validates everything, then creates or opens the store.

    Bad input raises before anything is written; an existing store of another config is
    refused (never modified). The stored config is `canonical_config(config)`; the task
    applies after ``max_train`` (which takes the first examples of the dataset's pool).
    """
    config = canonical_config(config)
    check_config(config)
    pool = load_pool(config, data_dir)
    ds = pool.dataset
    if ds.source_sha256 is not None:  # a user's file: the store remembers its bytes
        config["dataset_sha256"] = ds.source_sha256
        _check_same_file(Path(workdir) / "store", config)
    ds, audit_mask = store_dataset(ds, config)
    # The model contract (stateless, logits [B, C], penultimate=...) before anything exists.
    check_model(
        get_model(config["arch"], ds.num_classes, conv_impl, tabular=ds.tabular),
        ds.image_shape,
        ds.num_classes,
        config["arch"],
    )
    if ds.tabular:
        augment.check_tabular(config["queries"], config["augment_shift"], config["augment_mirror"])
    if config["augment_mirror"] and not ds.mirror_ok:
        raise ValueError(
            f"augment_mirror=True, but mirroring changes the labels of {ds.name!r} "
            "(e.g. digits); use --noaugment_mirror."
        )
    queries = augment.query_set(config["queries"], ds.mirror_ok, tabular=ds.tabular)
    num_models, num_examples = config["num_models"], ds.x_train.shape[0]
    rule = config_option(config, "keep_rule")
    keep = membership.keep_mask_of_rule(
        rule, config["seed"], num_models, num_examples, config["pkeep"]
    )
    start, stop = parse_model_range(model_range, num_models)
    if models_per_step is not None and models_per_step < 1:
        raise ValueError(f"--models_per_step={models_per_step} must be >= 1.")
    train_config = TrainConfig.from_run_config(
        config, ds.num_classes, conv_impl=conv_impl, compute_dtype=compute_dtype
    )
    train_config.validate()  # Before the store exists: a bad config writes nothing.
    steps = steps_per_epoch(keep, config["batch_size"])
    privacy = None
    if train_config.dp:
        privacy = accounting.privacy_of_run(
            train_config, steps, config_option(config, "dp_accountant")
        )
    labels, arrays = None, {}
    num_canaries = config_option(config, "num_canaries")
    label_dp_epsilon = config_option(config, "label_dp_epsilon")
    if membership.label_noise_enabled(num_canaries, label_dp_epsilon):
        labels = membership.model_labels(
            config["seed"],
            ds.y_train,
            ds.num_classes,
            np.arange(num_models),
            num_canaries=num_canaries,
            label_dp_epsilon=label_dp_epsilon,
        )
        arrays = {
            "canary": labels.canary,
            "private_labels": labels.private_labels,
            "train_labels": labels.train_labels,
        }
    if pool.groups is not None:
        arrays.update(groups=pool.groups, source_index=pool.source_index)
    if audit_mask is not None:
        arrays["audit_canary"] = audit_mask
    spec = store_lib.StoreSpec(
        num_models=num_models,
        num_examples=num_examples,
        num_queries=len(queries),
        num_classes=ds.num_classes,
        query_names=augment.query_names(queries),
        config=config,
        num_test_examples=ds.x_test.shape[0] if config["store_test_logits"] else 0,
        optional_arrays=tuple(arrays),
        group_names=pool.group_names,
    )
    store = store_lib.create_or_open(
        Path(workdir) / "store",
        spec,
        keep,
        ds.y_train,
        logits_dtype,
        test_labels=ds.y_test if config["store_test_logits"] else None,
        arrays=arrays,
    )
    todo = store.missing_models()
    todo = todo[(todo >= start) & (todo < stop)]
    blocks = []
    if todo.size:
        size = models_per_step or auto_models_per_step(
            train_config, ds.x_train.shape[1:], int(todo.size)
        )
        blocks = blocks_of(todo, size)
    return RunPlan(
        config,
        ds,
        queries,
        keep,
        train_config,
        store,
        blocks,
        (start, stop),
        steps=steps,
        labels=labels,
        privacy=privacy,
    )


@dataclasses.dataclass
class BlockResult:
    """The query phase's output for one block of B models.

    Attributes:
      logits: [B, N, A, C] float32, every pool example under every query.
      test_logits: [B, T, C] float32, the test set under the identity query.
      summary: per-model train (IN), OUT and test accuracy, for the block's record (train
        and OUT accuracy against the labels each model trained on, `RunPlan.labels`).
    """

    logits: np.ndarray
    test_logits: np.ndarray
    summary: dict


def query_block(engine: Engine, params, plan: RunPlan, block: np.ndarray) -> BlockResult:
    """The query phase: logits of a trained block, and its accuracies (one `query_pass`
    over the pool already on the devices, `engine.x`, and the test set). Accuracies on the
    pool are against the labels each model was trained on."""
    ds = plan.dataset
    y = ds.y_train if plan.labels is None else plan.labels.train_labels[block]
    res = query_pass(
        engine.model,
        params,
        engine.x,
        y,
        plan.keep[block],
        plan.queries,
        ds.x_test,
        ds.y_test,
    )
    summary = {
        name: [round(float(a), 5) for a in getattr(res, name)]
        for name in ("train_accuracy", "out_accuracy", "test_accuracy")
    }
    return BlockResult(res.logits, res.test_logits, summary)


def _remove_finished_checkpoints(root: Path, store: store_lib.LogitStore) -> None:
    """Deletes checkpoints of blocks already complete in the store (left by a job killed
    after its block's record was written but before its cleanup)."""
    if not root.is_dir():
        return
    done = ~np.isin(np.arange(store.num_models), store.missing_models())
    for directory in root.glob("*/m*-*"):
        try:
            a, b = (int(s) for s in directory.name[1:].split("-"))
        except ValueError:
            continue
        if 0 <= a < b <= store.num_models and done[a:b].all():
            shutil.rmtree(directory, ignore_errors=True)


def _progress(config: dict, b0: int, b1: int, log: Callable[[str], None], totals: dict):
    """The engine's per-epoch callback: checks for divergence, logs, and sums DP-SGD's
    truncated samples per model into ``totals`` (``dp_truncated``, ``dp_epochs_counted``)."""

    def progress(stats):
        loss = stats["loss"]
        if not np.all(np.isfinite(loss)):
            bad = (b0 + np.flatnonzero(~np.isfinite(loss))).tolist()
            raise ValueError(
                f"Model(s) {bad} diverged (non-finite loss) in epoch {stats['epoch']}; "
                "nothing of this block was written. Lower --learning_rate or raise "
                "--warmup_epochs, in a new --workdir."
            )
        if "dp_truncated" in stats:
            totals["dp_truncated"] = totals.get("dp_truncated", 0) + stats["dp_truncated"]
            totals["dp_epochs_counted"] = totals.get("dp_epochs_counted", 0) + 1
        log(
            f"models [{b0}, {b1}) epoch {stats['epoch']}/{config['epochs']}: "
            f"loss {loss.mean():.3f}, train acc {stats['accuracy'].mean():.3f}, "
            f"{stats['examples_per_second']:,.0f} examples/s"
        )

    return progress


def _block_extra(plan: RunPlan, totals: dict) -> dict:
    """DP-SGD's part of a block record: the privacy spent and the truncated samples."""
    if plan.privacy is None:
        return {}
    extra = {"privacy": plan.privacy}
    if "dp_truncated" in totals:
        # Epochs before a resumed checkpoint are not counted: dp_epochs_counted says how many.
        extra["dp_truncated"] = [int(v) for v in np.asarray(totals["dp_truncated"])]
        extra["dp_epochs_counted"] = int(totals["dp_epochs_counted"])
    return extra


def write_privacy(plan: RunPlan, workdir: str | Path) -> Path | None:
    """Writes DP-SGD's privacy spent to ``workdir/results/privacy.json`` (None without it)."""
    if plan.privacy is None:
        return None
    path = Path(workdir) / "results" / "privacy.json"
    store_lib.write_text_atomic(path, json.dumps(plan.privacy, indent=2) + "\n")
    return path


def _privacy_line(privacy: dict) -> str:
    p = privacy
    return (
        f"DP-SGD privacy spent ({p['accountant']} accountant): epsilon = {p['epsilon']} at "
        f"delta = {p['delta']:g} (noise multiplier {p['noise_multiplier']:g}, clip norm "
        f"{p['clip_norm']:g}, sampling probability {p['sampling_probability']:.4g}, "
        f"{p['steps']} steps)"
    )


def train_shadows(
    config: dict,
    workdir: str | Path,
    *,
    data_dir: str | None = None,
    model_range: str | None = None,
    models_per_step: int | None = None,
    conv_impl: str = "auto",
    compute_dtype: str = "float32",
    logits_dtype: str = "float32",
    checkpoint_every: int = 5,
    save_params: bool = False,
    log: Callable[[str], None] = logging.info,
) -> store_lib.LogitStore:
    """Trains the models of `model_range` that the store does not have yet and writes them.

    Args:
      config: a run config (`experiments.train_shadows.make_config`), stored in the store's
        metadata.
      workdir: run directory; the store is `workdir/store`.
      data_dir: where tfds / IDX data lives (not part of the config).
      model_range: "START:STOP" or None for all models.
      models_per_step: models trained at once (default: `auto_models_per_step`).
      conv_impl: convolution lowering, see `lira_jax.models.layers`.
      compute_dtype: "float32" or "bfloat16" (mixed precision, see `TrainConfig`).
      logits_dtype: "float32" or "float16".
      checkpoint_every: save a block's training state to `workdir/checkpoints` every this
        many epochs (0: never); a re-run resumes the block from its latest checkpoint.
      save_params: also write every block's final parameters to `workdir/params` (for
        attacks that query the models, e.g. the label-only boundary attack; see
        `lira_jax.train.params`).
      log: where progress lines go; the last line is the per-phase timing.

    Returns:
      The store.

    With DP-SGD, the privacy spent is written to ``workdir/results/privacy.json``, into each
    block's record (with the block's truncated samples, ``dp_truncated``) and logged last
    but one.

    Raises:
      DatasetError, StoreError, ValueError: bad input, with a message saying what to do.
    """
    clock = PhaseClock()
    failpoints.check()
    if checkpoint_every < 0:
        raise ValueError(f"--checkpoint_every={checkpoint_every} must be >= 0 (0: never).")
    with clock("startup"):
        plan = prepare(
            config,
            workdir,
            data_dir=data_dir,
            model_range=model_range,
            models_per_step=models_per_step,
            conv_impl=conv_impl,
            compute_dtype=compute_dtype,
            logits_dtype=logits_dtype,
        )
        store, ds = plan.store, plan.dataset
        checkpoints = Path(workdir) / "checkpoints"
        _remove_finished_checkpoints(checkpoints, store)
        privacy_path = write_privacy(plan, workdir)
    start, stop = plan.model_range
    if save_params:
        unsaved = [
            (int(r["start"]), int(r["stop"]))
            for r in store.records()
            if params_lib.SHA_KEY not in r.get("extra", {})
            and r["start"] < stop
            and start < r["stop"]
        ]
        if unsaved:
            log(
                f"Block(s) {unsaved} were trained without --save_params: their parameters are "
                "not saved (delete their records and re-run to train and save them)."
            )
    if not plan.blocks:
        log(f"Models [{start}, {stop}) are already in {store.path}; nothing to train.")
        if plan.privacy is not None:
            log(f"{_privacy_line(plan.privacy)}; in {privacy_path}")
        log(clock.line())
        return store
    with clock("startup"):
        engine = Engine(
            plan.train_config,
            ds.x_train,
            ds.y_train,
            plan.steps,
        )
    log(
        f"Training {plan.num_todo} of {config['num_models']} models ({ds.name}, "
        f"{config['arch']}, N={ds.x_train.shape[0]}, {len(plan.queries)} queries) in "
        f"{len(plan.blocks)} block(s) of <= {len(plan.blocks[0])}; store {store.path}"
    )
    # A checkpoint resumes only under the same numerics: the run's config and the execution
    # choices that change rounding (a re-run with another lowering or dtype starts afresh).
    checkpoint_key = store_lib.config_fingerprint(
        {
            "config": store.metadata["config_fingerprint"],
            "conv_impl": conv_impl,
            "compute_dtype": compute_dtype,
        }
    )
    done, skipped = 0, []
    for block in plan.blocks:
        b0, b1 = int(block[0]), int(block[-1]) + 1
        t_block = time.perf_counter()
        try:
            with store.claim(b0, b1):
                if not np.isin(block, store.missing_models()).all():
                    skipped.append((b0, b1))  # Another job wrote part of it meanwhile.
                    continue
                ckpt = BlockCheckpointer(checkpoints, checkpoint_key, b0, b1, checkpoint_every)
                with clock("compile"):
                    engine.compile(len(block))
                totals: dict = {}
                with clock("train"):
                    params = engine.train(
                        block,
                        plan.keep[block],
                        progress=_progress(config, b0, b1, log, totals),
                        checkpointer=ckpt,
                        label_rows=None if plan.labels is None else plan.labels.train_labels[block],
                    )
                with clock("query"):
                    result = query_block(engine, params, plan, block)
                with clock("store_write"):
                    extra = {
                        **result.summary,
                        "seconds": round(time.perf_counter() - t_block, 2),
                        "conv_impl": conv_impl,
                        "compute_dtype": compute_dtype,
                    }
                    if save_params:  # Before the record: a record with a sha has its params.
                        sha = params_lib.save_block_params(workdir, b0, b1, params)
                        extra[params_lib.SHA_KEY] = sha
                    store.write_block(
                        b0,
                        result.logits,
                        extra={**extra, **_block_extra(plan, totals)},
                        test_logits=result.test_logits if config["store_test_logits"] else None,
                    )
                    failpoints.hit("block_recorded")
                    ckpt.remove()  # The block is in the store: its checkpoints are done with.
        except store_lib.BlockClaimedError as e:
            log(f"skipping models [{b0}, {b1}): {e}")
            skipped.append((b0, b1))
            continue
        done += len(block)
        elapsed = clock.elapsed()
        s = result.summary
        log(
            f"wrote models [{b0}, {b1}): train acc {np.mean(s['train_accuracy']):.3f}, out acc "
            f"{np.mean(s['out_accuracy']):.3f}, test acc {np.mean(s['test_accuracy']):.3f} | "
            f"{done}/{plan.num_todo} models done, {elapsed:.0f}s elapsed, "
            f"~{elapsed / done * (plan.num_todo - done):.0f}s left"
        )
    if skipped:
        log(
            f"Skipped block(s) {skipped}: claimed or partly written by another job. Re-run "
            "the same command after it ends to fill whatever is still missing."
        )
    if plan.privacy is not None:
        log(f"{_privacy_line(plan.privacy)}; in {privacy_path}")
    log(clock.line())
    return store

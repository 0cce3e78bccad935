r"""Trains shadow models in blocks and writes their logits into the run's store.

    python -m experiments.train_shadows --workdir=runs/digits
    # 64 cnn32 models on sklearn digits -> runs/digits/store (a few minutes on 2 CPU cores)

Every hyperparameter flag left unset takes the dataset's default from
`experiments/configs`. The run is idempotent: models whose block is already complete in
the store are skipped, so re-running the same command after an interruption finishes
the job, and independent jobs can fill disjoint `--model_range`s of one store.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from absl import app, flags, logging

from experiments import configs, flagdefs
from lira_jax import store as store_lib
from lira_jax.data import augment, datasets, membership
from lira_jax.models import CONV_IMPLS, arch_names
from lira_jax.train import (
    COMPUTE_DTYPES,
    Engine,
    TrainConfig,
    auto_models_per_step,
    query_logits,
    sharding,
    steps_per_epoch,
)
from lira_jax.train.checkpoint import BlockCheckpointer

_DATASET = flags.DEFINE_string(
    "dataset", "digits", f"Dataset name, one of {datasets.dataset_names()}."
)
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "tfds data_dir (prepared datasets) or folder of IDX files."
)
_MAX_TRAIN = flags.DEFINE_integer(
    "max_train", None, "Use only the first N training examples (small runs)."
)
_ARCH = flags.DEFINE_string("arch", None, f"Model, one of {arch_names()}.")
_NUM_MODELS = flags.DEFINE_integer("num_models", None, "Number of shadow models M.")
_PKEEP = flags.DEFINE_float("pkeep", None, "Fraction of models each example is IN for.")
_EPOCHS = flags.DEFINE_integer("epochs", None, "Training epochs.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", None, "Batch size per model.")
_LEARNING_RATE = flags.DEFINE_float("learning_rate", None, "Peak learning rate.")
_MOMENTUM = flags.DEFINE_float("momentum", None, "SGD momentum.")
_WEIGHT_DECAY = flags.DEFINE_float("weight_decay", None, "Weight decay.")
_WARMUP_EPOCHS = flags.DEFINE_float("warmup_epochs", None, "Linear warm-up epochs.")
_AUGMENT_SHIFT = flags.DEFINE_integer("augment_shift", None, "Max random shift (pixels).")
_AUGMENT_MIRROR = flags.DEFINE_bool("augment_mirror", None, "Random horizontal flips.")
_QUERIES = flags.DEFINE_string(
    "queries", None, "Query set: identity, mirror, shiftK or crossK (e.g. shift1, cross1)."
)
_STORE_TEST_LOGITS = flags.DEFINE_bool(
    "store_test_logits", None, "Also store every model's logits on the test set (influence)."
)
_SEED = flags.DEFINE_integer("seed", None, "Seed of the keep mask, inits and data orders.")
_MODELS_PER_STEP = flags.DEFINE_integer(
    "models_per_step",
    None,
    "Models trained at once per block (default: engine.auto_models_per_step, by backend "
    "and memory).",
)
_MODEL_RANGE = flags.DEFINE_string(
    "model_range", None, "START:STOP, train only models [START, STOP) (batch-array jobs)."
)
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed",
    False,
    "One multi-process JAX job: jax.distributed.initialize() (cluster auto-detected, or "
    "JAX_COORDINATOR_ADDRESS/JAX_NUM_PROCESSES/JAX_PROCESS_ID), then process i of P trains "
    "the i-th contiguous share of --model_range.",
)
_CONV_IMPL = flags.DEFINE_enum(
    "conv_impl", "auto", CONV_IMPLS, "Convolution lowering (auto: patches on CPU, lax else)."
)
_COMPUTE_DTYPE = flags.DEFINE_enum(
    "compute_dtype",
    "float32",
    list(COMPUTE_DTYPES),
    "Compute dtype of training (bfloat16: mixed precision with float32 params, for "
    "accelerators; slower on CPU). Recorded in each block's record.",
)
_CHECKPOINT_EVERY = flags.DEFINE_integer(
    "checkpoint_every",
    5,
    "Save each block's training state every N epochs (0: never); a "
    "killed job re-run with the same command resumes from it.",
)
_LOGITS_DTYPE = flags.DEFINE_enum(
    "logits_dtype", "float32", ["float32", "float16"], "Storage dtype of the logits."
)

# The run's config: what the store's contents are a function of (and what must match when a
# workdir is reused). Execution choices (blocks, conv lowering, data_dir) are not part of it.
CONFIG_KEYS = (
    "dataset",
    "max_train",
    "arch",
    "num_models",
    "pkeep",
    "epochs",
    "batch_size",
    "learning_rate",
    "momentum",
    "weight_decay",
    "warmup_epochs",
    "augment_shift",
    "augment_mirror",
    "queries",
    "seed",
    "store_test_logits",
)


def make_config(dataset: str, **overrides) -> dict:
    """The run config: the dataset's defaults, with every non-None override applied."""
    unknown = set(overrides) - set(CONFIG_KEYS)
    if unknown:
        raise ValueError(f"Unknown config keys {sorted(unknown)}; valid: {CONFIG_KEYS}.")
    config = {"dataset": dataset, "max_train": None, **configs.defaults_for(dataset)}
    config.update({k: v for k, v in overrides.items() if v is not None})
    return {k: config[k] for k in CONFIG_KEYS}


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


def _blocks(models: np.ndarray, size: int) -> list[np.ndarray]:
    """Splits sorted model indices into contiguous runs of at most `size` models."""
    if models.size == 0:
        return []
    runs = np.split(models, np.flatnonzero(np.diff(models) != 1) + 1)
    return [run[i : i + size] for run in runs for i in range(0, len(run), size)]


def _check_names(config: dict) -> None:
    if config["dataset"] not in datasets.dataset_names():
        raise datasets.DatasetError(
            f"Unknown dataset {config['dataset']!r}; valid names: {datasets.dataset_names()}."
        )
    if config["arch"] not in arch_names():
        raise ValueError(f"Unknown arch {config['arch']!r}; valid names: {arch_names()}.")
    # Validates num_models / pkeep with a clear message before any data is loaded.
    membership.keep_mask(config["seed"], config["num_models"], 1, config["pkeep"])


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
    log: Callable[[str], None] = logging.info,
) -> store_lib.LogitStore:
    """Trains the models of `model_range` that the store does not have yet and writes them.

    Args:
      config: a `make_config` dict (stored in the store's metadata).
      workdir: run directory; the store is `workdir/store`.
      data_dir: where tfds / IDX data lives (not part of the config).
      model_range: "START:STOP" or None for all models.
      models_per_step: models trained at once (default: `auto_models_per_step`).
      conv_impl: convolution lowering, see `lira_jax.models.layers`.
      compute_dtype: "float32" or "bfloat16" (mixed precision, see `TrainConfig`).
      logits_dtype: "float32" or "float16".
      checkpoint_every: save a block's training state to `workdir/checkpoints` every this
        many epochs (0: never); a re-run resumes the block from its latest checkpoint.
      log: where progress lines go.

    Returns:
      The store.

    Raises:
      DatasetError, StoreError, ValueError: bad input, with a message saying what to do.
    """
    _check_names(config)
    ds = datasets.load_dataset(config["dataset"], data_dir, config["max_train"])
    if config["augment_mirror"] and not ds.mirror_ok:
        raise ValueError(
            f"augment_mirror=True, but mirroring changes the labels of {ds.name!r} "
            "(e.g. digits); use --noaugment_mirror."
        )
    queries = augment.query_set(config["queries"], ds.mirror_ok)
    num_models, num_examples = config["num_models"], ds.x_train.shape[0]
    keep = membership.keep_mask(config["seed"], num_models, num_examples, config["pkeep"])
    start, stop = parse_model_range(model_range, num_models)
    if models_per_step is not None and models_per_step < 1:
        raise ValueError(f"--models_per_step={models_per_step} must be >= 1.")
    if checkpoint_every < 0:
        raise ValueError(f"--checkpoint_every={checkpoint_every} must be >= 0 (0: never).")

    train_config = TrainConfig(
        arch=config["arch"],
        num_classes=ds.num_classes,
        epochs=config["epochs"],
        batch_size=config["batch_size"],
        learning_rate=config["learning_rate"],
        momentum=config["momentum"],
        weight_decay=config["weight_decay"],
        warmup_epochs=config["warmup_epochs"],
        augment_shift=config["augment_shift"],
        augment_mirror=config["augment_mirror"],
        seed=config["seed"],
        conv_impl=conv_impl,
        compute_dtype=compute_dtype,
    )
    train_config.validate()  # Before the store exists: a bad config writes nothing.

    spec = store_lib.StoreSpec(
        num_models=num_models,
        num_examples=num_examples,
        num_queries=len(queries),
        num_classes=ds.num_classes,
        query_names=augment.query_names(queries),
        config=config,
        num_test_examples=ds.x_test.shape[0] if config["store_test_logits"] else 0,
    )
    store = store_lib.create_or_open(
        Path(workdir) / "store",
        spec,
        keep,
        ds.y_train,
        logits_dtype,
        test_labels=ds.y_test if config["store_test_logits"] else None,
    )
    todo = store.missing_models()
    todo = todo[(todo >= start) & (todo < stop)]
    if todo.size == 0:
        log(f"Models [{start}, {stop}) are already in {store.path}; nothing to train.")
        return store
    size = models_per_step or auto_models_per_step(
        train_config, ds.x_train.shape[1:], int(todo.size)
    )
    blocks = _blocks(todo, size)

    engine = Engine(
        train_config, ds.x_train, ds.y_train, steps_per_epoch(keep, config["batch_size"])
    )
    log(
        f"Training {todo.size} of {num_models} models ({ds.name}, {config['arch']}, "
        f"N={num_examples}, {len(queries)} queries) in {len(blocks)} block(s) of <= {size}; "
        f"store {store.path}"
    )
    identity = (augment.Query(False, 0, 0),)
    # A checkpoint resumes only under the same numerics: the run's config and the execution
    # choices that change rounding (a re-run with another lowering or dtype starts afresh).
    checkpoint_key = store_lib.config_fingerprint(
        {
            "config": store.metadata["config_fingerprint"],
            "conv_impl": conv_impl,
            "compute_dtype": compute_dtype,
        }
    )
    done, skipped, t_run = 0, [], time.perf_counter()
    for block in blocks:
        b0, b1 = int(block[0]), int(block[-1]) + 1
        t_block = time.perf_counter()

        def progress(stats, b0=b0, b1=b1):
            loss = stats["loss"]
            if not np.all(np.isfinite(loss)):
                bad = (b0 + np.flatnonzero(~np.isfinite(loss))).tolist()
                raise ValueError(
                    f"Model(s) {bad} diverged (non-finite loss) in epoch {stats['epoch']}; "
                    "nothing of this block was written. Lower --learning_rate or raise "
                    "--warmup_epochs, in a new --workdir."
                )
            log(
                f"models [{b0}, {b1}) epoch {stats['epoch']}/{config['epochs']}: "
                f"loss {loss.mean():.3f}, train acc {stats['accuracy'].mean():.3f}, "
                f"{stats['examples_per_second']:,.0f} examples/s"
            )

        try:
            with store.claim(b0, b1):
                if not np.isin(block, store.missing_models()).all():
                    skipped.append((b0, b1))  # Another job wrote part of it meanwhile.
                    continue
                ckpt = BlockCheckpointer(
                    Path(workdir) / "checkpoints",
                    checkpoint_key,
                    b0,
                    b1,
                    checkpoint_every,
                )
                params = engine.train(block, keep[block], progress=progress, checkpointer=ckpt)
                logits = query_logits(engine.model, params, ds.x_train, queries)
                test_logits = query_logits(engine.model, params, ds.x_test, identity)[:, :, 0]
                correct = logits[:, :, 0].argmax(-1) == ds.y_train
                in_acc = (correct & keep[block]).sum(1) / keep[block].sum(1)
                out_acc = (correct & ~keep[block]).sum(1) / np.maximum((~keep[block]).sum(1), 1)
                test_acc = (test_logits.argmax(-1) == ds.y_test).mean(1)
                store.write_block(
                    b0,
                    logits,
                    extra={
                        "train_accuracy": [round(float(a), 5) for a in in_acc],
                        "out_accuracy": [round(float(a), 5) for a in out_acc],
                        "test_accuracy": [round(float(a), 5) for a in test_acc],
                        "seconds": round(time.perf_counter() - t_block, 2),
                        "conv_impl": conv_impl,
                        "compute_dtype": compute_dtype,
                    },
                    test_logits=test_logits if config["store_test_logits"] else None,
                )
                ckpt.remove()  # The block is in the store: its checkpoints are done with.
        except store_lib.BlockClaimedError as e:
            log(f"skipping models [{b0}, {b1}): {e}")
            skipped.append((b0, b1))
            continue
        done += len(block)
        elapsed = time.perf_counter() - t_run
        log(
            f"wrote models [{b0}, {b1}): train acc {in_acc.mean():.3f}, out acc "
            f"{out_acc.mean():.3f}, test acc {test_acc.mean():.3f} | {done}/{todo.size} models "
            f"done, {elapsed:.0f}s elapsed, ~{elapsed / done * (todo.size - done):.0f}s left"
        )
    if skipped:
        log(
            f"Skipped block(s) {skipped}: claimed or partly written by another job. Re-run "
            "the same command after it ends to fill whatever is still missing."
        )
    return store


def config_from_flags() -> dict:
    return make_config(
        _DATASET.value,
        max_train=_MAX_TRAIN.value,
        arch=_ARCH.value,
        num_models=_NUM_MODELS.value,
        pkeep=_PKEEP.value,
        epochs=_EPOCHS.value,
        batch_size=_BATCH_SIZE.value,
        learning_rate=_LEARNING_RATE.value,
        momentum=_MOMENTUM.value,
        weight_decay=_WEIGHT_DECAY.value,
        warmup_epochs=_WARMUP_EPOCHS.value,
        augment_shift=_AUGMENT_SHIFT.value,
        augment_mirror=_AUGMENT_MIRROR.value,
        queries=_QUERIES.value,
        seed=_SEED.value,
        store_test_logits=_STORE_TEST_LOGITS.value,
    )


def run_from_flags() -> store_lib.LogitStore:
    config, model_range = config_from_flags(), _MODEL_RANGE.value
    if _DISTRIBUTED.value:  # before anything touches a device
        index, count = sharding.initialize_distributed()
        start, stop = parse_model_range(model_range, config["num_models"])
        model_range = "{}:{}".format(*sharding.process_share(start, stop, index, count))
    return train_shadows(
        config,
        flagdefs.WORKDIR.value,
        data_dir=_DATA_DIR.value,
        model_range=model_range,
        models_per_step=_MODELS_PER_STEP.value,
        conv_impl=_CONV_IMPL.value,
        compute_dtype=_COMPUTE_DTYPE.value,
        logits_dtype=_LOGITS_DTYPE.value,
        checkpoint_every=_CHECKPOINT_EVERY.value,
    )


main = flagdefs.main_for(run_from_flags, trains=True)


if __name__ == "__main__":
    app.run(main)

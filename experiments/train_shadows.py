r"""Trains shadow models in blocks and writes their logits into the run's store.

    python -m experiments.train_shadows --workdir=runs/digits
    # 64 cnn32 models on sklearn digits -> runs/digits/store (a few minutes on 2 CPU cores)

Every hyperparameter flag left unset takes the dataset's default from
`experiments/configs`. The run is idempotent: models whose block is already complete in
the store are skipped, so re-running the same command after an interruption finishes
the job, and independent jobs can fill disjoint `--model_range`s of one store.

Label memorization and privacy: `--task=pair:A,B` or `parity` trains binary
classifiers; `--num_canaries=K` flips half the labels of K canaries per model;
`--label_dp_epsilon=E` trains every model on randomized-response labels (E-label-DP);
`--dp_noise_multiplier=S` trains with DP-SGD and writes the privacy spent to
results/privacy.json. `experiments.blia` sweeps label-DP's ε and attacks the canaries.
`--audit_canaries=K --audit_canary_kind=mislabeled|ood|blank` plants K worst-case
membership canaries for a DP audit (`experiments.dp_audit`).
"""

from __future__ import annotations

from absl import app, flags

from experiments import configs, flagdefs
from lira_jax import store as store_lib
from lira_jax.data import TASK_HELP, audit_canaries, datasets, membership, mixtures
from lira_jax.models import CONV_IMPLS, arch_names
from lira_jax.train import COMPUTE_DTYPES, accounting, pool, sharding
from lira_jax.train.run import OPTIONAL_CONFIG, canonical_config, parse_model_range, train_shadows

__all__ = [
    "CONFIG_KEYS",
    "config_from_flags",
    "flag_overrides",
    "make_config",
    "run_kwargs_from_flags",
    "train_shadows",
]

_DATASET = flags.DEFINE_string(
    "dataset",
    "digits",
    f"Dataset name, one of {datasets.dataset_names()}, or npz:PATH: your own arrays in an "
    ".npz file (x_train, y_train, x_test, y_test; optional num_classes, mirror_ok; see "
    "lira_jax.data.NPZ_FORMAT). The store records the file's sha256.",
)
_DATA_DIR = flagdefs.DATA_DIR
_MAX_TRAIN = flags.DEFINE_integer(
    "max_train", None, "Use only the first N training examples (small runs)."
)
_ARCH = flags.DEFINE_string(
    "arch",
    None,
    f"Model, one of {arch_names()}, or package.module:Name: your own flax module class "
    "(built as Name(num_classes=C)) or factory (Name(C) -> module), stateless, with "
    "__call__(x, penultimate=False) returning logits (lira_jax.models.MODEL_CONTRACT).",
)
_NUM_MODELS = flagdefs.NUM_MODELS
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
    "queries",
    None,
    "Query set: identity, mirror, shiftK, crossK, ringD, rotR, or several joined by '+' "
    "(e.g. shift1, cross1, ring1+rot9 for the label-only augmentation attack).",
)
_STORE_TEST_LOGITS = flags.DEFINE_bool(
    "store_test_logits", None, "Also store every model's logits on the test set (influence)."
)
_MIXTURE_FLAGS = {
    "mixture": flags.DEFINE_enum(
        "mixture",
        None,
        list(mixtures.MIXTURES),
        "Add an under-represented group from --ood_dataset to the pool (default none): a "
        "class-balanced random subset, its smallest feature cluster (subpopulation), or its "
        "memorized examples (singletons, needs --singleton_workdir).",
    ),
    "ood_dataset": flags.DEFINE_string(
        "ood_dataset",
        None,
        f"Source of the under-represented group: {pool.OOD_SOURCES} (aug: AugMix-style "
        "corruptions of base examples outside the pool) or a dataset name.",
    ),
    "ood_size": flags.DEFINE_integer(
        "ood_size", None, "Size of the random OOD group (a multiple of the classes)."
    ),
    "pca_dims": flags.DEFINE_integer("pca_dims", None, "subpopulation: PCA dimensions."),
    "num_clusters": flags.DEFINE_integer("num_clusters", None, "subpopulation: KMeans clusters."),
    "singleton_threshold": flags.DEFINE_float(
        "ood_singleton_threshold",
        None,
        "singletons: memorization above which an OOD example is kept.",
    ),
    "singleton_workdir": flags.DEFINE_string(
        "singleton_workdir", None, "singletons: workdir of the complete --mixture=random run."
    ),
    "augmix_severity": flags.DEFINE_integer(
        "augmix_severity", None, "ood_dataset=aug: corruption severity 1..10."
    ),
}
_SEED = flags.DEFINE_integer("seed", None, "Seed of the keep mask, inits and data orders.")
_TASK = flags.DEFINE_string(
    "task",
    None,
    f"Label task: {TASK_HELP}. Applied after --max_train. Default: all.",
)
_NUM_CANARIES = flags.DEFINE_integer(
    "num_canaries",
    None,
    "K canary examples (fixed by the seed) whose label each model independently flips with "
    "probability 1/2 (0: none; default 0, experiments.blia: 100).",
)
_AUDIT_CANARIES = flags.DEFINE_integer(
    "audit_canaries",
    None,
    "K DP-audit canaries (fixed by the seed): pool examples replaced by worst-case ones of "
    "--audit_canary_kind, IN for half the models like every example (0: none; default 0).",
)
_AUDIT_CANARY_KIND = flags.DEFINE_enum(
    "audit_canary_kind",
    None,
    list(audit_canaries.AUDIT_CANARY_KINDS),
    "Kind of --audit_canaries: mislabeled (a random other label), ood (uniform-noise input, "
    "random label), blank (blank input, distinct marks, the rarest label). Default mislabeled.",
)
_LABEL_DP_EPSILON = flags.DEFINE_float(
    "label_dp_epsilon",
    None,
    "Label-DP by randomized response with this epsilon, per model (unset or inf: off).",
)
_DP_NOISE_MULTIPLIER = flags.DEFINE_float(
    "dp_noise_multiplier",
    None,
    "DP-SGD with this noise multiplier sigma (unset: plain SGD); Poisson sampling, "
    "per-example clipping. Privacy spent -> results/privacy.json.",
)
_DP_CLIP_NORM = flags.DEFINE_float(
    "dp_clip_norm", None, "DP-SGD's per-example clip norm C (default 1.0 with DP-SGD)."
)
_DP_DELTA = flags.DEFINE_float(
    "dp_delta", None, "DP-SGD's delta the epsilon is reported at (default 1e-5 with DP-SGD)."
)
_DP_ACCOUNTANT = flags.DEFINE_enum(
    "dp_accountant",
    None,
    list(accounting.ACCOUNTANTS),
    "dp-accounting's accountant for DP-SGD's epsilon (default pld).",
)
_KEEP_RULE = flags.DEFINE_enum(
    "keep_rule",
    None,
    list(membership.KEEP_RULES),
    "How the keep mask is drawn (default balanced: every example IN for pkeep*M models). "
    "pairs: complementary pairs of models, balanced over every even prefix (pkeep 0.5; "
    "what experiments.budget trains, so a store can be attacked before it is complete).",
)
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
_SAVE_PARAMS = flags.DEFINE_bool(
    "save_params",
    False,
    "Also save every model's final parameters (orbax, RUN/params/, checksummed in the "
    "block records): needed by attacks that query the models (label-only boundary).",
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
    *OPTIONAL_CONFIG,  # task, num_canaries, label_dp_epsilon, dp_*, audit_*: absent when off
    *pool.MIXTURE_KEYS,  # absent without a mixture
)


def make_config(dataset: str, **overrides) -> dict:
    """The run config: the dataset's defaults, with every non-None override applied.

    With DP-SGD on (``dp_noise_multiplier`` set), an unset clip norm and δ take
    `configs.DP_DEFAULTS`. Keys that are off (``task="all"``, no canaries, ε = inf, no
    DP-SGD, no mixture) are left out (`lira_jax.train.run.canonical_config`), so the config
    of a run without them equals that of a store written before they existed; a mixture's
    config holds every mixture key (`pool.MIXTURE_KEYS`).
    """
    unknown = set(overrides) - set(CONFIG_KEYS)
    if unknown:
        raise ValueError(f"Unknown config keys {sorted(unknown)}; valid: {CONFIG_KEYS}.")
    dataset = datasets.canonical_dataset_name(dataset)
    config = {
        "dataset": dataset,
        "max_train": None,
        **OPTIONAL_CONFIG,
        **pool.MIXTURE_DEFAULTS,
        **configs.defaults_for(dataset),
    }
    config.update({k: v for k, v in overrides.items() if v is not None})
    if config["dp_noise_multiplier"] is not None:
        for key, value in configs.DP_DEFAULTS.items():
            if config[key] is None:
                config[key] = value
    return canonical_config({k: config[k] for k in CONFIG_KEYS})


def flag_overrides() -> dict:
    """The config overrides given by flags (None: the dataset's default)."""
    return dict(
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
        task=_TASK.value,
        num_canaries=_NUM_CANARIES.value,
        label_dp_epsilon=_LABEL_DP_EPSILON.value,
        audit_canaries=_AUDIT_CANARIES.value,
        audit_canary_kind=_AUDIT_CANARY_KIND.value,
        dp_noise_multiplier=_DP_NOISE_MULTIPLIER.value,
        dp_clip_norm=_DP_CLIP_NORM.value,
        dp_delta=_DP_DELTA.value,
        dp_accountant=_DP_ACCOUNTANT.value,
        keep_rule=_KEEP_RULE.value,
        **{k: flag.value for k, flag in _MIXTURE_FLAGS.items()},
    )


def mixture_params_from_flags() -> dict:
    """The mixture selection settings given by flags (for binaries that sweep mixtures)."""
    skip = ("mixture", "ood_dataset", "singleton_workdir")
    return {k: f.value for k, f in _MIXTURE_FLAGS.items() if k not in skip and f.value is not None}


def config_from_flags(**changes) -> dict:
    """The run config of the flags, with `changes` applied over them (None: unchanged)."""
    overrides = flag_overrides()
    overrides.update({k: v for k, v in changes.items() if v is not None})
    return make_config(_DATASET.value, **overrides)


def run_kwargs_from_flags() -> dict:
    """The execution flags of `lira_jax.train.run.train_shadows` (not part of the config)."""
    return dict(
        data_dir=_DATA_DIR.value,
        models_per_step=_MODELS_PER_STEP.value,
        conv_impl=_CONV_IMPL.value,
        compute_dtype=_COMPUTE_DTYPE.value,
        logits_dtype=_LOGITS_DTYPE.value,
        checkpoint_every=_CHECKPOINT_EVERY.value,
        save_params=_SAVE_PARAMS.value,
    )


def run_from_flags() -> store_lib.LogitStore:
    config, model_range = config_from_flags(), _MODEL_RANGE.value
    if _DISTRIBUTED.value:  # before anything touches a device
        index, count = sharding.initialize_distributed()
        start, stop = parse_model_range(model_range, config["num_models"])
        model_range = "{}:{}".format(*sharding.process_share(start, stop, index, count))
    return train_shadows(
        config, flagdefs.WORKDIR.value, model_range=model_range, **run_kwargs_from_flags()
    )


main = flagdefs.main_for(run_from_flags, trains=True)


if __name__ == "__main__":
    app.run(main)

"""Flags shared by several binaries (defined once, so binaries can be combined)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from absl import app, flags

# Required by every binary built with `main_for` (checked there, not at definition, so a
# binary that has no run directory, such as bench.attacks, can share the other flags).
WORKDIR = flags.DEFINE_string(
    "workdir", None, "Run directory: holds store/ (the logits) and results/."
)
COMPILE_CACHE = flags.DEFINE_string(
    "compile_cache",
    None,
    "Directory of JAX's persistent compilation cache for binaries that train ('off': none). "
    "Default: $LIRA_JAX_CACHE_DIR, else $XDG_CACHE_HOME/lira_jax/jax (~/.cache/...).",
)
DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "tfds data_dir (prepared datasets) or folder of IDX files."
)
OUTPUT = flags.DEFINE_string(
    "output",
    None,
    "Output directory (export_queries: the export, default RUN/queries; audit: the report, "
    "default RUN/results/audit_<name of the target file>).",
)
NUM_MODELS = flags.DEFINE_integer(
    "num_models", None, "Number of models M (train_shadows: shadow models; default 64)."
)
NUM_EXAMPLES = flags.DEFINE_integer(
    "num_examples", None, "Examples N (benchmarks: synthetic size, or the first N)."
)

JSON_OUT = flags.DEFINE_string(
    "json_out", None, "Benchmarks: also write the measured numbers to this JSON file."
)


def write_json_out(path: str | None, data: dict) -> None:
    """Writes `data` (JSON-serialisable) to `path` (a --json_out value); nothing if None."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(data, indent=2) + "\n")


# Attack flags (experiments.attack and the benchmarks that time attacks). A binary whose
# default differs sets it with `set_defaults` before parsing.
ATTACKS = flags.DEFINE_string(
    "attacks",
    "all",
    "Comma-separated attack names, or 'all' (every attack the run has the inputs of); "
    "names: lira_jax.attacks.ATTACKS and label_only.QUERYING_ATTACKS (an unknown name is "
    "refused with the list).",
)
NUM_TARGETS = flags.DEFINE_integer(
    "num_targets", 0, "How many models serve in turn as the target (0: every model)."
)
NUM_BOOTSTRAP = flags.DEFINE_integer(
    "num_bootstrap", 100, "Bootstrap resamples of the examples for 95% intervals (0: none)."
)
ATTACK_SEED = flags.DEFINE_integer(
    "attack_seed",
    0,
    "Seed of the bootstrap, the equal-size shadow sets, attack models and boundary searches.",
)


EXPOSURE = flags.DEFINE_enum(
    "exposure",
    "logits",
    ["logits", "labels"],
    "What the target returns: 'logits', or 'labels' only (confidence masking): attacks "
    "that need scores are then reported undefined, label-only attacks run as usual.",
)
RMIA_GAMMA = flags.DEFINE_float(
    "rmia_gamma", 2.0, "RMIA's likelihood-ratio threshold γ (paper 2; the authors' code 1)."
)
RMIA_OFFLINE_A = flags.DEFINE_string(
    "rmia_offline_a",
    "0.3",
    "RMIA offline's a in [0, 1] (paper 0.3), or 'auto': chosen per target on a paired "
    "reference model, as the authors' code does.",
)


def rmia_offline_a() -> float | str:
    """--rmia_offline_a as a number, or "auto"."""
    value = RMIA_OFFLINE_A.value.strip()
    if value == "auto":
        return value
    try:
        return float(value)
    except ValueError:
        raise ValueError(
            f"--rmia_offline_a={RMIA_OFFLINE_A.value!r} must be a number in [0, 1] or 'auto'."
        ) from None


def set_defaults(**defaults) -> None:
    """This binary's own defaults for shared flags (call before `app.run` parses)."""
    for name, value in defaults.items():
        flags.FLAGS.set_default(name, value)


# HopSkipJump's budget for the label-only boundary attack (ART's defaults: 50 iterations,
# 10,000 max evaluations, 100 initial evaluations, 100 random starts).
HSJ_ITERATIONS = flags.DEFINE_integer(
    "hsj_iterations", 10, "HopSkipJump iterations (gradient estimate, step, bisection)."
)
HSJ_MAX_EVALS = flags.DEFINE_integer(
    "hsj_max_evals", 1000, "Most label queries of one HopSkipJump gradient estimate."
)
HSJ_INIT_EVALS = flags.DEFINE_integer(
    "hsj_init_evals", 50, "Queries of the first gradient estimate (round t: x sqrt(t+1))."
)
HSJ_INIT_SIZE = flags.DEFINE_integer(
    "hsj_init_size", 100, "Random inputs tried as HopSkipJump's starting point."
)
HSJ_EXAMPLE_CHUNK = flags.DEFINE_integer(
    "hsj_example_chunk",
    None,
    "Examples attacked together (memory: chunk x eval batch inputs; default by backend).",
)
HSJ_EVAL_BATCH = flags.DEFINE_integer(
    "hsj_eval_batch",
    None,
    "Gradient-estimate inputs per example per model call (default by backend).",
)


def hsj_config():
    """The `lira_jax.attacks.label_only.HSJConfig` of the --hsj_* flags (imports JAX)."""
    from lira_jax.attacks.label_only import HSJConfig

    config = HSJConfig(
        iterations=HSJ_ITERATIONS.value,
        max_evals=HSJ_MAX_EVALS.value,
        init_evals=HSJ_INIT_EVALS.value,
        init_size=HSJ_INIT_SIZE.value,
        example_chunk=HSJ_EXAMPLE_CHUNK.value,
        eval_batch=HSJ_EVAL_BATCH.value,
    )
    config.validate()
    return config


def exit_on_error(fn: Callable[[], None], *errors: type[BaseException]) -> None:
    """Runs `fn`; a known error type exits with status 1 and its one-line message.

    The library's errors already say what is wrong and what to do; a traceback would
    only hide that message.
    """
    try:
        fn()
    except errors as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except OSError as e:  # Unwritable workdir, full disk, vanished files.
        print(
            f"error: {e}. Check that --workdir is writable and its disk has space; completed "
            "blocks are kept, and re-running the same command continues.",
            file=sys.stderr,
        )
        sys.exit(1)


class _QuietOrbax(logging.Filter):
    """Drops orbax's INFO/DEBUG records (about 20 lines per checkpoint saved) and the
    tracebacks of its errors (its writer threads log one per failed file; the error itself
    reaches the caller, which reports it in one line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "orbax" not in record.pathname:
            return True
        record.exc_info, record.exc_text = None, None
        return record.levelno >= logging.WARNING


def quiet_checkpoint_logs() -> None:
    """Keeps orbax's warnings and errors in a binary's log, one line each, without its
    progress chatter."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _QuietOrbax) for f in handler.filters):
            handler.addFilter(_QuietOrbax())


def main_for(run: Callable[[], None], *, trains: bool = False) -> Callable[[list[str]], None]:
    """The `main(argv)` of a binary whose work is `run()` (absl flags already parsed).

    Args:
      run: the binary's `run_from_flags`.
      trains: the binary trains models: split the host CPU into one JAX device per core
        (before JAX starts), turn on the persistent compilation cache (`--compile_cache`)
        and keep orbax's progress lines out of the log.
    """

    def main(argv: list[str]) -> None:
        if len(argv) > 1:
            raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
        if not WORKDIR.value:
            raise app.UsageError("--workdir is required: the run directory (e.g. runs/digits).")
        if trains:
            # Only training binaries need JAX here.
            from lira_jax.train import compile_cache, sharding

            sharding.use_cpu_cores_as_devices()
            quiet_checkpoint_logs()
            exit_on_error(lambda: compile_cache.enable(COMPILE_CACHE.value), ValueError)
        exit_on_error(run, ValueError)

    return main

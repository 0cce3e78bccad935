"""Flags shared by several binaries (defined once, so binaries can be combined)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from absl import app, flags

WORKDIR = flags.DEFINE_string(
    "workdir", None, "Run directory: holds store/ (the logits) and results/.", required=True
)
COMPILE_CACHE = flags.DEFINE_string(
    "compile_cache",
    None,
    "Directory of JAX's persistent compilation cache for binaries that train ('off': none). "
    "Default: $LIRA_JAX_CACHE_DIR, else $XDG_CACHE_HOME/lira_jax/jax (~/.cache/...).",
)


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
        if trains:
            # Only training binaries need JAX here.
            from lira_jax.train import compile_cache, sharding

            sharding.use_cpu_cores_as_devices()
            quiet_checkpoint_logs()
            exit_on_error(lambda: compile_cache.enable(COMPILE_CACHE.value), ValueError)
        exit_on_error(run, ValueError)

    return main

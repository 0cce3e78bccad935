"""Named failpoints: deterministic process kills at chosen moments, for fault tests.

A fault test sets the environment variable ``LIRA_JAX_FAILPOINT`` to ``NAME@K`` (or
``NAME``, meaning ``NAME@1``) before starting a process; the K-th time that process reaches
the point ``NAME`` it sends itself SIGKILL: no cleanup, no ``finally``, no flush, exactly
what an OOM kill, a preemption or a power cut leaves behind. With the variable unset (every
real run), ``hit`` costs one dictionary lookup.

The points (``POINTS``) are the moments after which the on-disk state of a run differs:

- ``epoch_dispatched``: an epoch's computation has been started (asynchronously) and has not
  been waited for: the kill lands during an epoch, before its checkpoint.
- ``checkpoint_saved``: a block checkpoint has just been written and committed.
- ``logits_written``: a block's logits are in the store's chunks, its completion record is
  not written yet.
- ``record_renaming``: the completion record's temp file is written and synced, and is about
  to be renamed (linked) into place.
- ``block_recorded``: the completion record is in place; the block's checkpoints and claim
  are not yet removed.

Planted bugs (``LIRA_JAX_PLANTED_BUG=NAME``, names in ``BUGS``) are the other kind of fault:
the process keeps running but computes something wrong on purpose, so that a test can show
that an audit catches that bug. ``dp_noise_off``: DP-SGD adds no noise while the config,
the accountant and the store still claim the configured noise multiplier (a DP audit of
such a run must report a violation). A planted bug is logged as a warning wherever it
acts; no flag or config key reaches it, so a normal run cannot turn one on.

Design notes: a kill decided by a point reached, rather than by a timer, makes a fault test
independent of the machine's speed and load (a timer kill of a fast job may find it already
finished). Counting per process and per point lets one variable choose, e.g., "after the
second checkpoint".
"""

from __future__ import annotations

import os
import signal

__all__ = ["BUGS", "BUG_ENV_VAR", "ENV_VAR", "POINTS", "check", "hit", "planted"]

ENV_VAR = "LIRA_JAX_FAILPOINT"
BUG_ENV_VAR = "LIRA_JAX_PLANTED_BUG"
BUGS = ("dp_noise_off",)
POINTS = (
    "epoch_dispatched",
    "checkpoint_saved",
    "logits_written",
    "record_renaming",
    "block_recorded",
)

_counts: dict[str, int] = {}


def _armed() -> tuple[str, int] | None:
    spec = os.environ.get(ENV_VAR, "").strip()
    if not spec:
        return None
    name, _, nth = spec.partition("@")
    if name not in POINTS or (nth and not (nth.isdigit() and int(nth) >= 1)):
        raise ValueError(
            f"{ENV_VAR}={spec!r} must be NAME or NAME@K (K >= 1), NAME one of {POINTS}; "
            f"unset it for normal runs."
        )
    return name, int(nth or 1)


def check() -> None:
    """Raises ValueError now if an environment variable is malformed (call at startup,
    before anything is written)."""
    _armed()
    _planted_bug()


def _planted_bug() -> str | None:
    name = os.environ.get(BUG_ENV_VAR, "").strip()
    if not name:
        return None
    if name not in BUGS:
        raise ValueError(f"{BUG_ENV_VAR}={name!r} must be one of {BUGS}; unset it for normal runs.")
    return name


def planted(name: str) -> bool:
    """Whether the test-only bug `name` is planted in this process (see the module notes).

    Raises:
      ValueError: `name` is not a known bug (a typo in the library), or the environment
        variable names an unknown one.
    """
    if name not in BUGS:
        raise ValueError(f"Unknown planted bug {name!r}; known: {BUGS}.")
    return _planted_bug() == name


def hit(name: str) -> None:
    """Marks that point `name` was reached; kills the process if it is the armed one.

    Raises:
      ValueError: `name` is not a known point (a typo in the library), or the environment
        variable is malformed.
    """
    if name not in POINTS:
        raise ValueError(f"Unknown failpoint {name!r}; known: {POINTS}.")
    armed = _armed()
    if armed is None or armed[0] != name:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] == armed[1]:
        os.kill(os.getpid(), signal.SIGKILL)

"""Orbax checkpoints of a model block's training state, so a killed job resumes mid-block.

Design notes: the state of a block after epoch e is (stacked params, stacked optimizer
state, e). Nothing else is needed to continue exactly: every random choice of epoch e+1
(data order, augmentation) is `fold_in(model key, epoch)`, a pure function of the seed.
A resumed block therefore ends bit-identical to an uninterrupted one on the same backend.
Checkpoints live under `workdir/checkpoints/<config fingerprint>/m{start}-{stop}/`, so a
different config or block layout never restores a wrong state (it simply finds none), and
orbax writes each step to a temporary directory renamed on completion, so a kill during a
save leaves the previous checkpoint usable. A block's checkpoints are deleted once its
logits are in the store.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from lira_jax import failpoints
from lira_jax.train.engine import tree_bytes

PyTree = Any
_log = logging.getLogger(__name__)
# A step takes its arrays' bytes plus orbax's metadata files; a save is skipped unless the
# disk has this much room (factor x array bytes + margin).
_SPACE_FACTOR = 1.25
_SPACE_MARGIN = 1 << 20

__all__ = ["BlockCheckpointer"]


class BlockCheckpointer:
    """Saves and restores one block's (params, opt_state, epoch).

    Args:
      root: the run's checkpoint root (e.g. `workdir/checkpoints`).
      fingerprint: the run's config fingerprint (part of the path).
      start, stop: the block's model range.
      every_epochs: save after every `every_epochs` epochs (0: never save).
    """

    def __init__(
        self, root: str | Path, fingerprint: str, start: int, stop: int, every_epochs: int
    ):
        if every_epochs < 0:
            raise ValueError(f"checkpoint_every={every_epochs} must be >= 0 (0: no checkpoints).")
        self.directory = Path(root).absolute() / fingerprint[:16] / f"m{start:06d}-{stop:06d}"
        self.every_epochs = every_epochs
        self._manager = None

    def _mgr(self) -> ocp.CheckpointManager:
        if self._manager is None:
            options = ocp.CheckpointManagerOptions(max_to_keep=1, enable_async_checkpointing=False)
            self._manager = ocp.CheckpointManager(self.directory, options=options)
        return self._manager

    def restore(self, like: tuple[PyTree, PyTree]) -> tuple[int, PyTree, PyTree] | None:
        """The latest saved (epoch, params, opt_state), or None.

        Args:
          like: (params, opt_state) of the right structure, shapes and dtypes (e.g. the
            freshly initialised block).
        """
        if not self.directory.is_dir():
            return None
        step = self._mgr().latest_step()
        if step is None:
            return None
        abstract = jax.tree.map(
            ocp.utils.to_shape_dtype_struct, {"params": like[0], "opt_state": like[1]}
        )
        try:
            state = self._mgr().restore(step, args=ocp.args.StandardRestore(abstract))
        except (ValueError, TypeError, KeyError):
            # A state of another shape (e.g. a different device count pads blocks
            # differently): start the block afresh rather than restore something wrong.
            return None
        return int(step), state["params"], state["opt_state"]

    def maybe_save(self, epoch: int, params: PyTree, opt_state: PyTree, last: bool) -> bool:
        """Saves after epoch `epoch` (1-based) when due; never after the last epoch.

        A save that fails (full disk, quota, vanished directory) is logged and abandoned,
        not raised: a checkpoint only shortens a re-run, and the training in memory is
        worth more than it. The previous checkpoint stays the resume point, and the
        half-written one is removed to give its space back.

        Returns:
          True if a checkpoint of `epoch` was saved.
        """
        if self.every_epochs == 0 or last or epoch % self.every_epochs:
            return False
        state = {"params": params, "opt_state": opt_state}
        need = _SPACE_FACTOR * tree_bytes(state) + _SPACE_MARGIN
        self.directory.parent.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(self.directory.parent).free
        if free < need:
            # Checked first: orbax's writer threads report a full disk with a page of
            # tracebacks each, and leave half a step behind.
            why = f"it needs ~{need / 2**20:.1f} MiB and the disk has {free / 2**20:.1f} MiB free"
            return self._skipped(epoch, why)
        try:
            self._mgr().save(epoch, args=ocp.args.StandardSave(state), force=True)
            self._mgr().wait_until_finished()
        except Exception as e:  # orbax re-raises its writer threads' errors as they come
            self._abandon()
            return self._skipped(epoch, str(e).split("\n")[0][:300] or type(e).__name__)
        failpoints.hit("checkpoint_saved")
        return True

    def _skipped(self, epoch: int, why: str) -> bool:
        _log.warning(
            "Checkpoint of %s after epoch %d not saved, training goes on without it: %s",
            self.directory.name,
            epoch,
            why,
        )
        return False

    def _abandon(self) -> None:
        """Drops the manager and any half-written step after a failed save."""
        manager, self._manager = self._manager, None
        if manager is not None:
            try:
                manager.close()
            except Exception:  # A manager whose save failed may fail to close too.
                pass
        for tmp in self.directory.glob("*.orbax-checkpoint-tmp*"):
            shutil.rmtree(tmp, ignore_errors=True)

    def remove(self) -> None:
        """Deletes this block's checkpoints (its logits are safely in the store)."""
        if self._manager is not None:
            self._manager.close()
            self._manager = None
        shutil.rmtree(self.directory, ignore_errors=True)

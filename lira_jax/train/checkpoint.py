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

import shutil
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

PyTree = Any

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
        """Saves after epoch `epoch` (1-based) when due; never after the last epoch."""
        if self.every_epochs == 0 or last or epoch % self.every_epochs:
            return False
        state = {"params": params, "opt_state": opt_state}
        self._mgr().save(epoch, args=ocp.args.StandardSave(state), force=True)
        self._mgr().wait_until_finished()
        return True

    def remove(self) -> None:
        """Deletes this block's checkpoints (its logits are safely in the store)."""
        if self._manager is not None:
            self._manager.close()
            self._manager = None
        shutil.rmtree(self.directory, ignore_errors=True)

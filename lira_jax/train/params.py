"""Saved model parameters, for attacks that must query the models themselves.

    loaded = load_params("runs/digits", [0, 1, 2])   # after train_shadows --save_params
    logits = loaded.model.apply(jax.tree.map(lambda p: p[0], loaded.params), x)

Design notes: a run trained with `--save_params` writes each block's final parameters
(stacked, leading models axis) with orbax to `RUN/params/m{start:06d}-{stop:06d}/`, before
the block's completion record, and the record's `extra["params_sha256"]` holds the sha256
of the parameters (`params_sha256`). A record with that key therefore always has its
parameters on disk; `load_params` checks every block it reads against its record, and
`params_problems` (used by `experiments.verify`) checks them all. orbax writes to a
temporary directory and renames it when done, so a kill mid-save leaves no directory that
looks complete; a re-trained block overwrites its stale one. The model is rebuilt from
the store's config (architecture, number of classes); convolution lowerings share their
parameters, so the backend's default lowering is used.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import numpy as np
import orbax.checkpoint as ocp

from lira_jax import store as store_lib
from lira_jax.models import get_model

__all__ = [
    "PARAMS_DIR",
    "SHA_KEY",
    "SavedParams",
    "load_params",
    "params_problems",
    "params_sha256",
    "save_block_params",
    "saved_models",
]

PyTree = Any
PARAMS_DIR = "params"
SHA_KEY = "params_sha256"
_FLAG_HINT = (
    "train with `python -m experiments.train_shadows --save_params` (in a new --workdir, or "
    "after deleting the blocks' records) to save them"
)


def params_sha256(params: PyTree) -> str:
    """sha256 of a params pytree: every leaf's path, dtype, shape and C-order bytes."""
    digest = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        a = np.ascontiguousarray(np.asarray(leaf))
        digest.update(f"{jax.tree_util.keystr(path)}|{a.dtype.str}|{a.shape}".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def _block_dir(workdir: str | Path, start: int, stop: int) -> Path:
    return Path(workdir).absolute() / PARAMS_DIR / f"m{start:06d}-{stop:06d}"


def save_block_params(workdir: str | Path, start: int, stop: int, params: PyTree) -> str:
    """Writes a block's stacked params to `workdir/params/m{start}-{stop}`.

    Args:
      workdir: the run directory.
      start, stop: the block's model range.
      params: stacked params, leading axis stop − start.

    Returns:
      The params' sha256 (for the block's completion record).
    """
    b = jax.tree.leaves(params)[0].shape[0]
    if b != stop - start:
        raise ValueError(
            f"params hold {b} models, but the block [{start}, {stop}) has {stop - start}."
        )
    host = jax.tree.map(np.asarray, params)
    directory = _block_dir(workdir, start, stop)
    directory.parent.mkdir(parents=True, exist_ok=True)
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(directory, host, force=True)
    checkpointer.wait_until_finished()
    checkpointer.close()
    return params_sha256(host)


def _restore(directory: Path) -> PyTree:
    checkpointer = ocp.StandardCheckpointer()
    try:
        return jax.tree.map(np.asarray, checkpointer.restore(directory))
    finally:
        checkpointer.close()


@dataclasses.dataclass(frozen=True)
class SavedParams:
    """Saved parameters of some models of a run, with the model that applies them.

    Attributes:
      model: the flax module, rebuilt from the store's config.
      params: stacked params (numpy), leading axis len(models), in the order asked for.
      models: [B] int64 global model indices.
      config: the run's config (the store's metadata).
      num_classes: C.
    """

    model: nn.Module
    params: PyTree
    models: np.ndarray
    config: dict
    num_classes: int


def _records_by_model(store: store_lib.LogitStore) -> dict[int, dict]:
    by_model = {}
    for record in store.records():
        for m in range(int(record["start"]), int(record["stop"])):
            by_model[m] = record
    return by_model


def saved_models(store: store_lib.LogitStore) -> np.ndarray:
    """[M] bool: the models whose block record says their parameters were saved (read from
    the records only; `load_params` checks the files)."""
    saved = np.zeros(store.num_models, bool)
    for m, record in _records_by_model(store).items():
        saved[m] = SHA_KEY in record.get("extra", {})
    return saved


def load_params(workdir: str | Path, models: Sequence[int] | np.ndarray) -> SavedParams:
    """The saved params of `models` (global indices), checked against their records.

    Args:
      workdir: the run directory (holding `store/` and `params/`).
      models: model indices, in the order wanted.

    Returns:
      `SavedParams`.

    Raises:
      StoreError: no store; a model outside the store, not written, or trained without
        `--save_params` (the message names the flag); params missing, unreadable or not
        matching their record's sha256.
    """
    store = store_lib.open_store(Path(workdir) / "store")
    models = np.asarray(models, np.int64).reshape(-1)
    if models.size == 0 or models.min() < 0 or models.max() >= store.num_models:
        raise store_lib.StoreError(
            f"models {models.tolist()[:8]} must be indices in [0, {store.num_models})."
        )
    by_model = _records_by_model(store)
    unwritten = [int(m) for m in models if int(m) not in by_model]
    if unwritten:
        raise store_lib.StoreError(
            f"Models {unwritten[:8]} of {store.path} are not trained yet; run train_shadows "
            "for them (with --save_params)."
        )
    unsaved = [int(m) for m in models if SHA_KEY not in by_model[int(m)]["extra"]]
    if unsaved:
        raise store_lib.StoreError(
            f"The parameters of models {unsaved[:8]} were not saved: {_FLAG_HINT}."
        )
    rows = {}
    for m in models:
        record = by_model[int(m)]
        start, stop = int(record["start"]), int(record["stop"])
        if (start, stop) not in rows:
            rows[(start, stop)] = _checked_block(workdir, record)
    parts = []
    for m in models:
        record = by_model[int(m)]
        block = rows[(int(record["start"]), int(record["stop"]))]
        parts.append(jax.tree.map(lambda p, i=int(m) - int(record["start"]): p[i], block))
    params = jax.tree.map(lambda *leaves: np.stack(leaves), *parts)
    model = get_model(store.config["arch"], store.num_classes)
    return SavedParams(model, params, models, store.config, store.num_classes)


def _checked_block(workdir: str | Path, record: dict) -> PyTree:
    start, stop = int(record["start"]), int(record["stop"])
    directory = _block_dir(workdir, start, stop)
    if not directory.is_dir():
        raise store_lib.StoreError(
            f"Saved parameters of models [{start}, {stop}) are missing ({directory}); "
            f"delete the block's record and re-run train_shadows --save_params "
            f"--model_range={start}:{stop}."
        )
    try:
        params = _restore(directory)
    except Exception as e:  # orbax/tensorstore raise many types for damaged files
        raise store_lib.StoreError(
            f"Saved parameters of models [{start}, {stop}) in {directory} are unreadable "
            f"({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}); delete "
            f"the block's record and re-run train_shadows --save_params "
            f"--model_range={start}:{stop}."
        ) from None
    if params_sha256(params) != record["extra"][SHA_KEY]:
        raise store_lib.StoreError(
            f"Saved parameters of models [{start}, {stop}) in {directory} do not match the "
            "sha256 in their block record (corrupted); delete the block's record and re-run "
            f"train_shadows --save_params --model_range={start}:{stop}."
        )
    return params


def params_problems(workdir: str | Path) -> tuple[list[str], int]:
    """Checks every saved params entry of a run against its record.

    Returns:
      (problems, number of blocks with saved params). Blocks trained without
      --save_params are not problems (their params are simply not available).
    """
    store = store_lib.open_store(Path(workdir) / "store")
    problems, saved = [], 0
    for record in store.records():
        if SHA_KEY not in record.get("extra", {}):
            continue
        saved += 1
        try:
            _checked_block(workdir, record)
        except store_lib.StoreError as e:
            problems.append(str(e))
    return problems, saved

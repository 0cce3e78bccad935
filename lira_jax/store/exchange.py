"""Files exchanged with other frameworks: the exported queries, and a target's outputs.

An audit of a model that lira_jax did not train (`lira_jax.attacks.external`) goes through
two files, whose formats are these.

The query export (`write_query_export`, `experiments.export_queries`), a directory DIR:

  DIR/inputs.npy        float32 [N, A, *example_shape]: input n under query a, exactly as
                        every shadow model of the store was queried with it (the run's pool,
                        standardised with its statistics, then query a applied: mirror,
                        rotation, shift); n in store order, a in the store's query order.
                        Images are NHWC ([N, A, H, W, C]); tabular data [N, A, F] (A = 1).
  DIR/labels.npy        int32 [N]: the labels the attacks score against (the store's).
  DIR/query_names.json  the A query names, as in the store's metadata (e.g. "id_dy+0_dx+0").
  DIR/export.json       {"store", "config_fingerprint", "num_examples", "num_queries",
                        "example_shape", "dtype": "float32", "layout"}: what it was exported
                        from.

  inputs.npy is written in chunks of examples through a memory map of a temporary file
  (DIR/inputs.npy.partial) and renamed when complete, so memory stays bounded for large N
  and a DIR/inputs.npy that exists is whole. A DIR that holds the export of another store is
  refused, never overwritten.

The target's outputs (`read_target_outputs`): its outputs on DIR/inputs.npy, in the same
order, [N, A, C] (or [N, A] integer labels for a labels-only target), as

  * a .npy file (memory-mapped);
  * a .npz file holding exactly one array, or several of which one is named "outputs";
  * a zarr array (a directory with zarr.json, zarr v3, or .zarray, zarr v2), read with
    tensorstore.

The target's membership (`read_target_keep`): [N] bool (or 0/1 integers) in store order, as
a .npy file or a .npz file holding one array (or one named "keep").
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import tensorstore as ts

from lira_jax.store.errors import StoreError
from lira_jax.store.files import _io, write_text_atomic

__all__ = [
    "EXPORT_FILES",
    "QueryExport",
    "read_query_export",
    "read_target_keep",
    "read_target_outputs",
    "write_query_export",
]

EXPORT_FILES = ("inputs.npy", "labels.npy", "query_names.json", "export.json")


class QueryExport:
    """A read query export: `inputs` (memory-mapped [N, A, ...]), `labels` [N],
    `query_names` (A), `meta` (export.json)."""

    def __init__(self, inputs: np.ndarray, labels: np.ndarray, query_names, meta: dict):
        self.inputs, self.labels, self.query_names, self.meta = inputs, labels, query_names, meta


def write_query_export(
    out_dir: str | os.PathLike,
    chunks: Iterable[tuple[int, np.ndarray]],
    *,
    num_examples: int,
    query_names: Sequence[str],
    example_shape: Sequence[int],
    labels: np.ndarray,
    meta: dict,
) -> Path:
    """Writes a query export (module docstring) from chunks of examples.

    Args:
      out_dir: DIR (created).
      chunks: (start, views [n, A, *example_shape]) pairs covering [0, N) in order.
      num_examples: N.
      query_names: the A names.
      example_shape: one example's shape.
      labels: [N] int labels.
      meta: what it was exported from: at least "store" and "config_fingerprint".

    Returns:
      DIR.

    Raises:
      StoreError: DIR holds the export of another store, or the chunks do not cover N.
      OSError: the files cannot be written (full disk, permissions).
    """
    out = Path(out_dir)
    previous = out / "export.json"
    if previous.is_file():
        old = json.loads(previous.read_text())
        if old.get("config_fingerprint") != meta.get("config_fingerprint"):
            raise StoreError(
                f"{out} holds the query export of another store ({old.get('store')}); choose "
                "another --output (nothing there was changed)."
            )
    with _io(f"writing the query export to {out}"):
        out.mkdir(parents=True, exist_ok=True)
        shape = (int(num_examples), len(query_names), *map(int, example_shape))
        partial = out / "inputs.npy.partial"
        inputs = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32, shape=shape)
        covered = 0
        for start, views in chunks:
            views = np.asarray(views, np.float32)
            if start != covered or views.shape[1:] != shape[1:]:
                raise StoreError(
                    f"export chunk at {start} with shape {views.shape} does not continue "
                    f"[0, {covered}) of {shape}."
                )
            inputs[start : start + views.shape[0]] = views
            covered += views.shape[0]
        if covered != shape[0]:
            raise StoreError(f"the export chunks covered {covered} of {shape[0]} examples.")
        inputs.flush()
        del inputs
        os.replace(partial, out / "inputs.npy")
        np.save(out / "labels.npy.partial.npy", np.asarray(labels, np.int32))
        os.replace(out / "labels.npy.partial.npy", out / "labels.npy")
        write_text_atomic(out / "query_names.json", json.dumps(list(query_names), indent=1) + "\n")
        info = {
            **meta,
            "num_examples": shape[0],
            "num_queries": shape[1],
            "example_shape": list(shape[2:]),
            "dtype": "float32",
            "layout": "[N, A, *example_shape], NHWC images",
        }
        write_text_atomic(previous, json.dumps(info, indent=2) + "\n")
    return out


def read_query_export(out_dir: str | os.PathLike) -> QueryExport:
    """Reads a query export (inputs memory-mapped).

    Raises:
      StoreError: a file is missing (the export did not finish: run it again).
    """
    out = Path(out_dir)
    missing = [f for f in EXPORT_FILES if not (out / f).is_file()]
    if missing:
        raise StoreError(
            f"{out} is not a complete query export (missing {missing}); run "
            "`python -m experiments.export_queries --workdir=RUN --output=DIR` (again)."
        )
    return QueryExport(
        np.load(out / "inputs.npy", mmap_mode="r"),
        np.load(out / "labels.npy"),
        json.loads((out / "query_names.json").read_text()),
        json.loads((out / "export.json").read_text()),
    )


def _single_array(path: Path, preferred: str, what: str) -> np.ndarray:
    with np.load(path, allow_pickle=False) as f:
        names = list(f.files)
        if preferred in names:
            return f[preferred]
        if len(names) == 1:
            return f[names[0]]
    raise StoreError(
        f"{path} holds {len(names)} arrays {names[:8]}; {what} must be its only array or the "
        f"one named {preferred!r}."
    )


def read_target_outputs(path: str | os.PathLike) -> np.ndarray:
    """The target's outputs from a .npy, .npz or zarr array (module docstring); .npy files
    are memory-mapped, zarr arrays read whole.

    Raises:
      StoreError: no such file, or a format this cannot read (what it accepts is named).
    """
    path = Path(path)
    accepted = "a .npy file, a .npz file (one array, or one named 'outputs') or a zarr array"
    try:
        if path.is_dir():
            for driver, marker in (("zarr3", "zarr.json"), ("zarr", ".zarray")):
                if (path / marker).is_file():
                    spec = {"driver": driver, "kvstore": {"driver": "file", "path": str(path)}}
                    return np.asarray(ts.open(spec, read=True).result().read().result())
            raise StoreError(f"{path} is a directory but not a zarr array; give {accepted}.")
        if not path.is_file():
            raise StoreError(f"No file {path}; give {accepted}.")
        if path.suffix == ".npz":
            return _single_array(path, "outputs", "the target's outputs")
        if path.suffix == ".npy":
            return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as e:
        if isinstance(e, StoreError):
            raise
        raise StoreError(
            f"Cannot read the target's outputs from {path}: {e}. Give {accepted}."
        ) from e
    raise StoreError(f"{path}: unknown extension {path.suffix!r}; give {accepted}.")


def read_target_keep(path: str | os.PathLike) -> np.ndarray:
    """The target's membership [N] from a .npy or .npz file (module docstring).

    Raises:
      StoreError: no such file, or another format.
    """
    path = Path(path)
    accepted = "a .npy file or a .npz file (one array, or one named 'keep') of [N] bool"
    if not path.is_file():
        raise StoreError(f"No file {path}; give {accepted}.")
    try:
        if path.suffix == ".npz":
            return _single_array(path, "keep", "the target's membership")
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        if isinstance(e, StoreError):
            raise
        raise StoreError(f"Cannot read the target's membership from {path}: {e}.") from e
    raise StoreError(f"{path}: unknown extension {path.suffix!r}; give {accepted}.")

"""The sharded logit store: the only place where training and analysis meet.

A store is a zarr v3 group on disk, written with tensorstore and readable with plain ``zarr``
or ``tensorstore`` (no lira_jax import needed)::

    path/zarr.json                      group; attributes["lira_jax"] holds the metadata
    path/logits                         [models, examples, queries, classes] float32 (or float16)
    path/keep                           [models, examples] bool: example n in model m's train set
    path/labels                         [examples] int32
    path/test_logits                    [models, test examples, classes] (optional)
    path/test_labels                    [test examples] int32 (optional, with test_logits)
    path/_blocks/zarr.json              empty zarr group, so plain zarr lists `_blocks` cleanly
    path/_blocks/m{start:06d}-{stop:06d}.json   one completion record per written model block

Arrays use the ``zarr3`` driver with codecs ``bytes`` (little endian) + ``zstd`` (level 3).
``logits`` and ``keep`` are chunked one model per chunk ([1, N, A, C] and [1, N]).

Design notes: a model block is the unit of work and of completeness. Because every chunk
holds exactly one model, any model range is chunk-aligned, so independent processes (array
jobs with disjoint ``--model_range``) write disjoint files and never need a lock. A block
becomes *visible* only through its completion record, written atomically (temp file +
rename) after its logits are fully written; a crash mid-block leaves no record, and the block
is simply missing and re-done. Readers trust records, never the presence of chunks (unwritten
chunks read as the fill value 0). The group ``zarr.json`` is created first-writer-wins (temp
file + ``os.link``), so concurrent ``create_or_open`` calls with the same spec are safe, and an
existing store is never modified by a caller with a different config. Each record holds the
sha256 of the block's float32 C-order bytes (for float16 stores: of the stored values cast to
float32), so ``LogitStore.verify`` can detect silent corruption.

Plain zarr emits a ``ZarrUserWarning`` for the record files only when walking the hierarchy
recursively (``group.tree()``, ``members(max_depth=None)``); opening arrays, reading
attributes and listing the root group are unaffected.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import errno
import hashlib
import importlib.metadata
import json
import os
import re
import socket
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorstore as ts

from lira_jax import failpoints

FORMAT_VERSION = 1

_META_KEY = "lira_jax"
_BLOCKS_DIR = "_blocks"
_RECORD_RE = re.compile(r"^m(\d{6,})-(\d{6,})\.json$")
_CLAIM_RE = re.compile(r"^m(\d{6,})-(\d{6,})\.claim$")
_LOGITS_DTYPES = ("float32", "float16")
_CODECS = [
    {"name": "bytes", "configuration": {"endian": "little"}},
    {"name": "zstd", "configuration": {"level": 3}},
]
# Claims across hosts are leases: refreshed every CLAIM_HEARTBEAT_SECONDS while held, and
# taken as dead after CLAIM_LEASE_SECONDS without a refresh (ten missed beats: generous for
# clock skew between hosts and for a busy shared filesystem).
CLAIM_HEARTBEAT_SECONDS = 60.0
CLAIM_LEASE_SECONDS = 600.0
_TRAIN_HINT = "run `python -m experiments.train_shadows --workdir=...` first"


class StoreError(ValueError):
    """Base error of the logit store; the message says what is wrong and what to do."""


class StoreMismatchError(StoreError):
    """An existing store was created with a different config, shape or membership."""


class BlockClaimedError(StoreError):
    """Another live process is writing an overlapping model range."""


class IncompleteStoreError(StoreError):
    """Some model blocks of the store have not been written (yet)."""


def _canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _to_json_dict(config: dict, name: str = "config") -> dict:
    """Round-trips ``config`` through JSON so stored and given configs compare equal."""
    if not isinstance(config, dict):
        raise StoreError(f"{name} must be a dict, got {type(config).__name__}.")
    try:
        return json.loads(_canonical_json(config))
    except (TypeError, ValueError) as e:
        raise StoreError(
            f"{name} must be JSON-serialisable (plain str/int/float/bool/None/list/dict, no NaN); "
            f"convert numpy scalars and arrays to Python values first: {e}"
        ) from e


def config_fingerprint(config: dict) -> str:
    """Returns the sha256 hex digest of the canonical JSON (sorted keys) of ``config``."""
    return hashlib.sha256(_canonical_json(_to_json_dict(config)).encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class StoreSpec:
    """What a store holds; everything that must match when an existing store is reopened.

    Attributes:
      num_models: M, the number of (shadow) models.
      num_examples: N, the number of examples every model is queried on.
      num_queries: A, the number of queries per example (e.g. augmentations).
      num_classes: C, the number of logits per query.
      query_names: A names, one per query (e.g. ``("identity", "hflip")``).
      config: the JSON-serialisable experiment config (dataset, arch, hyperparameters, seed).
      num_test_examples: T, held-out examples whose identity-query logits every model also
        stores (for test accuracy and influence estimates); 0 for none.
    """

    num_models: int
    num_examples: int
    num_queries: int
    num_classes: int
    query_names: tuple[str, ...]
    config: dict
    num_test_examples: int = 0

    def __post_init__(self):
        for name in ("num_models", "num_examples", "num_queries", "num_classes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise StoreError(f"StoreSpec.{name} must be a positive int, got {value!r}.")
            object.__setattr__(self, name, int(value))
        t = self.num_test_examples
        if isinstance(t, bool) or not isinstance(t, int | np.integer) or t < 0:
            raise StoreError(f"StoreSpec.num_test_examples must be an int >= 0, got {t!r}.")
        object.__setattr__(self, "num_test_examples", int(t))
        names = tuple(self.query_names)
        if len(names) != self.num_queries or not all(isinstance(q, str) for q in names):
            raise StoreError(
                f"StoreSpec.query_names must be {self.num_queries} strings (one per query), "
                f"got {names!r}."
            )
        object.__setattr__(self, "query_names", names)
        object.__setattr__(self, "config", _to_json_dict(self.config, "StoreSpec.config"))


def _library_versions() -> dict[str, str | None]:
    versions = {}
    for name in ("jax", "flax", "optax", "numpy", "tensorstore", "lira_jax"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    if versions["lira_jax"] is None:  # Running from a source checkout.
        versions["lira_jax"] = "source"
    return versions


_OS_ERROR_RE = re.compile(r"os_error_code='?(\d+)")
_IO_STATUSES = ("RESOURCE_EXHAUSTED", "PERMISSION_DENIED", "UNAVAILABLE", "DATA_LOSS")


def os_error_of(error: BaseException, doing: str) -> OSError | None:
    """The OSError behind a tensorstore/orbax I/O failure, or None for any other error.

    tensorstore reports a full disk or a permission problem as a ValueError whose text
    carries the operating system's error code (e.g. ``RESOURCE_EXHAUSTED: ... No space
    left on device [os_error_code=28]``); the binaries print OSErrors as one line with
    what to do, so such failures are turned back into one.

    Args:
      error: the exception raised by tensorstore or orbax.
      doing: what was being done, for the message (e.g. "writing models [0, 8) to ...").
    """
    text = str(error)
    match = _OS_ERROR_RE.search(text)
    if match:
        code = int(match.group(1))
        return OSError(code, f"{os.strerror(code)} ({doing})")
    if text.startswith(_IO_STATUSES):
        return OSError(errno.EIO, f"{text.split(':', 1)[0]} ({doing}): {text[:300]}")
    return None


@contextlib.contextmanager
def _io(doing: str):
    """Re-raises tensorstore's I/O failures as OSError (see `os_error_of`)."""
    try:
        yield
    except ValueError as e:
        err = os_error_of(e, doing)
        if err is None:
            raise
        raise err from e


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _write_json_atomic(
    path: Path, obj: Any, *, exclusive: bool = False, failpoint: str | None = None
) -> bool:
    """Writes ``obj`` as JSON to ``path`` via a temp file in the same directory.

    Args:
      path: destination file.
      obj: JSON-serialisable object.
      exclusive: if True, never replace an existing file (first writer wins).
      failpoint: a `lira_jax.failpoints` point reached between the synced temp file and its
        rename (fault tests).

    Returns:
      True if this call created/replaced the file, False if ``exclusive`` and it existed.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        if failpoint is not None:
            failpoints.hit(failpoint)
        if not exclusive:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)  # Atomic create-if-absent.
            return True
        except FileExistsError:
            return False
        except OSError:  # Filesystem without hard links: fall back to check-then-replace.
            if path.exists():
                return False
            os.replace(tmp, path)
            return True
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Writes a results file via a temp file + rename: a reader never sees half a file.

    The parent directory is created if needed. Used by the binaries for ``results/*``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_json(path: Path) -> Any:
    with open(path) as f:
        return json.load(f)


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        out.update(_flatten(v, key) if isinstance(v, dict) and v else {key: v})
    return out


def _config_diff(old: dict, new: dict) -> list[str]:
    old_f, new_f = _flatten(old), _flatten(new)
    missing = object()
    lines = []
    for key in sorted(set(old_f) | set(new_f)):
        a, b = old_f.get(key, missing), new_f.get(key, missing)
        if a != b:
            a_s = "<absent>" if a is missing else json.dumps(a)
            b_s = "<absent>" if b is missing else json.dumps(b)
            lines.append(f"  {key}: {a_s} -> {b_s}")
    return lines


def _runs(indices: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous ``[start, stop)`` runs of a sorted 1-D int array."""
    if indices.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(indices) != 1)
    starts = np.concatenate([[indices[0]], indices[breaks + 1]])
    stops = np.concatenate([indices[breaks], [indices[-1]]]) + 1
    return [(int(a), int(b)) for a, b in zip(starts, stops, strict=True)]


def _fmt_ranges(ranges: Sequence[tuple[int, int]]) -> str:
    return ", ".join(f"{a}:{b}" for a, b in ranges)


def _array_spec(path: Path, name: str) -> dict:
    return {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(path / name)}}


def _create_array(path: Path, name: str, shape, chunks, dtype: str, fill) -> ts.TensorStore:
    spec = _array_spec(path, name)
    spec["metadata"] = {
        "shape": list(shape),
        "data_type": dtype,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(chunks)}},
        "chunk_key_encoding": {"name": "default"},
        "codecs": _CODECS,
        "fill_value": fill,
    }
    try:
        # open=True, create=True: tensorstore creates the array metadata with a conditional
        # write, so concurrent creators agree, and an existing array is validated against it.
        with _io(f"creating {path / name}"):
            return ts.open(spec, open=True, create=True).result()
    except ValueError as e:
        raise StoreMismatchError(
            f"Array {path / name} exists with a different shape/dtype/chunking than "
            f"{list(shape)} {dtype}: {e}. Use a new --workdir or the original flags; never "
            "modify the existing store."
        ) from e


def _metadata(spec: StoreSpec, logits_dtype: str) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "num_models": spec.num_models,
        "num_examples": spec.num_examples,
        "num_queries": spec.num_queries,
        "num_classes": spec.num_classes,
        "num_test_examples": spec.num_test_examples,
        "query_names": list(spec.query_names),
        "logits_dtype": logits_dtype,
        "config": spec.config,
        "config_fingerprint": config_fingerprint(spec.config),
        "library_versions": _library_versions(),
        "created_at": _now(),
    }


def _read_metadata(path: Path) -> dict:
    group_file = path / "zarr.json"
    if not group_file.is_file():
        hint = ""
        if (path / "store" / "zarr.json").is_file():
            hint = f" (did you mean {path / 'store'}?)"
        raise StoreError(f"No logit store at {path}{hint}: {_TRAIN_HINT}.")
    try:
        group = _read_json(group_file)
        meta = group["attributes"][_META_KEY]
        version = meta["format_version"]
    except (ValueError, KeyError, TypeError) as e:
        raise StoreError(
            f"{group_file} is not a lira_jax logit store (no attributes.{_META_KEY}."
            f"format_version): {e!r}. Point at the store directory written by "
            "experiments.train_shadows."
        ) from e
    if version != FORMAT_VERSION:
        what = (
            "newer than this lira_jax supports; upgrade lira_jax"
            if version > FORMAT_VERSION
            else "older than this lira_jax supports; re-create it with train_shadows or use the "
            "lira_jax version that wrote it (see library_versions in its metadata)"
        )
        raise StoreError(
            f"Store at {path} has format_version={version}, expected {FORMAT_VERSION}: "
            f"it is {what}."
        )
    return meta


def _check_matches(path: Path, meta: dict, expected: dict) -> None:
    problems = []
    for key in (
        "num_models",
        "num_examples",
        "num_queries",
        "num_classes",
        "num_test_examples",
        "query_names",
        "logits_dtype",
    ):
        if meta.get(key, 0 if key == "num_test_examples" else None) != expected[key]:
            problems.append(f"  {key}: {meta.get(key)!r} -> {expected[key]!r}")
    if meta.get("config_fingerprint") != expected["config_fingerprint"]:
        diff = _config_diff(meta.get("config", {}), expected["config"])
        problems.append("  config differs (old -> new):")
        problems.extend("  " + line for line in diff or ["  <config fingerprint only>"])
    if problems:
        raise StoreMismatchError(
            f"Existing store at {path} does not match the requested one:\n"
            + "\n".join(problems)
            + "\nUse a new --workdir, or rerun with the original flags; never modify the "
            "existing store."
        )


def _check_keep_labels(spec: StoreSpec, keep: np.ndarray, labels: np.ndarray):
    keep = np.asarray(keep)
    labels = np.asarray(labels)
    m, n = spec.num_models, spec.num_examples
    if keep.shape != (m, n):
        raise StoreError(f"keep must have shape [models, examples]=({m}, {n}), got {keep.shape}.")
    if keep.dtype != np.bool_:
        if not np.isin(keep, (0, 1)).all():
            raise StoreError(f"keep must be boolean (or 0/1), got dtype {keep.dtype}.")
        keep = keep.astype(bool)
    if labels.shape != (n,):
        raise StoreError(f"labels must have shape [examples]=({n},), got {labels.shape}.")
    if not np.issubdtype(labels.dtype, np.integer):
        raise StoreError(f"labels must be integers, got dtype {labels.dtype}.")
    if labels.size and (labels.min() < 0 or labels.max() >= spec.num_classes):
        raise StoreError(
            f"labels must lie in [0, num_classes={spec.num_classes}), got range "
            f"[{labels.min()}, {labels.max()}]."
        )
    return keep, labels.astype(np.int32)


def create_or_open(
    path: str | os.PathLike,
    spec: StoreSpec,
    keep: np.ndarray,
    labels: np.ndarray,
    logits_dtype: str = "float32",
    test_labels: np.ndarray | None = None,
) -> LogitStore:
    """Creates a store at ``path``, or opens an existing one after checking it matches.

    Safe when several processes call it at the same time with the same spec: arrays are
    created with tensorstore's ``open=True, create=True`` and the group ``zarr.json`` is
    created first-writer-wins. An existing store is never modified, only validated.

    Args:
      path: store directory (the training binary uses ``workdir/store``).
      spec: shapes, query names and config of the store.
      keep: [models, examples] bool membership mask.
      labels: [examples] int true labels, in ``[0, num_classes)``.
      logits_dtype: ``"float32"`` or ``"float16"`` (halves the size; reads return float32).
      test_labels: [test examples] int labels; required iff ``spec.num_test_examples > 0``.

    Returns:
      A writable ``LogitStore``.

    Raises:
      StoreMismatchError: the existing store has a different format version, shape, config
        (the message lists the differing keys, old -> new), logits dtype, keep or labels.
      StoreError: invalid arguments.
    """
    path = Path(path)
    if logits_dtype not in _LOGITS_DTYPES:
        raise StoreError(f"logits_dtype must be one of {_LOGITS_DTYPES}, got {logits_dtype!r}.")
    keep, labels = _check_keep_labels(spec, keep, labels)
    t = spec.num_test_examples
    if (test_labels is None) != (t == 0):
        raise StoreError(
            f"test_labels must be given exactly when spec.num_test_examples > 0 (it is {t})."
        )
    if t:
        test_labels = np.asarray(test_labels)
        if test_labels.shape != (t,) or not np.issubdtype(test_labels.dtype, np.integer):
            raise StoreError(
                f"test_labels must be [{t}] ints, got {test_labels.dtype} {test_labels.shape}."
            )
        if test_labels.min() < 0 or test_labels.max() >= spec.num_classes:
            raise StoreError(f"test_labels must lie in [0, {spec.num_classes}).")
        test_labels = test_labels.astype(np.int32)
    expected = _metadata(spec, logits_dtype)
    m, n, a, c = spec.num_models, spec.num_examples, spec.num_queries, spec.num_classes

    if not (path / "zarr.json").exists():
        path.mkdir(parents=True, exist_ok=True)
        _create_array(path, "logits", (m, n, a, c), (1, n, a, c), logits_dtype, 0.0)
        _create_array(path, "keep", (m, n), (1, n), "bool", False)
        _create_array(path, "labels", (n,), (n,), "int32", 0)
        if t:
            _create_array(path, "test_logits", (m, t, c), (1, t, c), logits_dtype, 0.0)
            _create_array(path, "test_labels", (t,), (t,), "int32", 0)
        (path / _BLOCKS_DIR).mkdir(exist_ok=True)
        _write_json_atomic(
            path / _BLOCKS_DIR / "zarr.json",
            {"zarr_format": 3, "node_type": "group", "attributes": {}},
            exclusive=True,
        )
        # keep/labels are written before the group file exists; a concurrent creator with the
        # same spec writes identical bytes, and a store "exists" only once zarr.json does.
        store = LogitStore(path, expected, writable=True)
        with _io(f"writing the keep mask and labels to {path}"):
            store._keep.write(keep).result()
            store._labels.write(labels).result()
            if t:
                store._test_labels.write(test_labels).result()
        group = {"zarr_format": 3, "node_type": "group", "attributes": {_META_KEY: expected}}
        _write_json_atomic(path / "zarr.json", group, exclusive=True)

    try:
        meta = _read_metadata(path)
    except StoreError as e:
        if isinstance(e, StoreMismatchError):
            raise
        raise StoreMismatchError(
            f"{e} Use a new --workdir; never modify the existing store."
        ) from e
    _check_matches(path, meta, expected)
    store = LogitStore(path, meta, writable=True)
    checks = [("keep", keep, store.keep()), ("labels", labels, store.labels())]
    if t:
        checks.append(("test_labels", test_labels, store.test_labels()))
    for name, given, stored in checks:
        if not np.array_equal(given, stored):
            bad = np.argwhere(given != stored)
            raise StoreMismatchError(
                f"Existing store at {path} has a different `{name}` than the one given "
                f"({len(bad)} entries differ, first at index {tuple(int(i) for i in bad[0])}). "
                "The membership is a function of the config and seed, so the data or seed "
                "pipeline changed: use a new --workdir; never modify the existing store."
            )
    return store


def open_store(path: str | os.PathLike, *, complete: bool = False) -> LogitStore:
    """Opens an existing store read-only.

    Args:
      path: store directory (``workdir/store`` for stores written by train_shadows).
      complete: require every model block to be written (what analyses need).

    Raises:
      StoreError: no store at ``path``, or its format version is not supported.
      IncompleteStoreError: ``complete`` and some blocks are missing (the message lists
        them and the command that fills them).
    """
    path = Path(path)
    store = LogitStore(path, _read_metadata(path), writable=False)
    if complete:
        store.require_complete()
    return store


class LogitStore:
    """A handle on a logit store; use ``create_or_open`` or ``open_store`` to get one.

    Array reads are lazy (tensorstore): only the requested slices are read from disk.
    Completion state is re-read from ``_blocks`` on every call, so it reflects blocks written
    by other processes since this handle was opened.

    Attributes:
      path: the store directory.
      metadata: the ``attributes["lira_jax"]`` dict of the group.
      num_models, num_examples, num_queries, num_classes: M, N, A, C.
      query_names: A names, one per query.
      config: the experiment config the store was written with.
    """

    def __init__(self, path: Path, metadata: dict, *, writable: bool):
        self.path = Path(path)
        self.metadata = metadata
        self.num_models = int(metadata["num_models"])
        self.num_examples = int(metadata["num_examples"])
        self.num_queries = int(metadata["num_queries"])
        self.num_classes = int(metadata["num_classes"])
        self.num_test_examples = int(metadata.get("num_test_examples", 0))
        self.query_names = tuple(metadata["query_names"])
        self.config = metadata["config"]
        self._writable = writable
        mode = {"read": True, "write": writable}
        try:
            self._logits = ts.open(_array_spec(self.path, "logits"), **mode).result()
            self._keep = ts.open(_array_spec(self.path, "keep"), **mode).result()
            self._labels = ts.open(_array_spec(self.path, "labels"), **mode).result()
            if self.num_test_examples:
                self._test_logits = ts.open(_array_spec(self.path, "test_logits"), **mode).result()
                self._test_labels = ts.open(_array_spec(self.path, "test_labels"), **mode).result()
        except ValueError as e:
            raise StoreError(
                f"Store at {self.path} is damaged (cannot open its arrays): {e}. Re-create it "
                "with experiments.train_shadows in a new --workdir."
            ) from e
        shape = (self.num_models, self.num_examples, self.num_queries, self.num_classes)
        if tuple(self._logits.shape) != shape:
            raise StoreError(
                f"Store at {self.path}: logits shape {tuple(self._logits.shape)} disagrees with "
                f"its metadata {shape}; the store is damaged, re-create it in a new --workdir."
            )

    def __repr__(self) -> str:
        return (
            f"LogitStore({str(self.path)!r}, models={self.num_models}, "
            f"examples={self.num_examples}, queries={self.num_queries}, "
            f"classes={self.num_classes}, complete={not self.missing_ranges()})"
        )

    # Reading.

    def keep(self) -> np.ndarray:
        """Returns the [models, examples] bool membership mask."""
        return self._keep.read().result()

    def labels(self) -> np.ndarray:
        """Returns the [examples] int32 true labels."""
        return self._labels.read().result()

    def _require_test(self) -> None:
        if not self.num_test_examples:
            raise StoreError(
                f"Store at {self.path} has no test-set logits; train with "
                "--store_test_logits (in a new --workdir) to get them."
            )

    def test_labels(self) -> np.ndarray:
        """Returns the [test examples] int32 labels of the held-out set."""
        self._require_test()
        return self._test_labels.read().result()

    def read_test_logits(self, models=slice(None), *, allow_incomplete: bool = False):
        """Reads the [models, test examples, classes] float32 held-out logits.

        Raises:
          StoreError: the store has no test logits, or (unless ``allow_incomplete``) a
            selected model is not written yet.
        """
        self._require_test()
        if not allow_incomplete:
            self._check_written(models)
        return np.asarray(self._test_logits[models].read().result(), np.float32)

    def _check_written(self, models) -> None:
        selected = np.unique(np.arange(self.num_models)[models])
        missing = np.intersect1d(selected, self.missing_models())
        if missing.size:
            raise IncompleteStoreError(
                f"Store at {self.path}: requested models include unwritten ones "
                f"({_fmt_ranges(_runs(missing))}). {self._fill_hint(_runs(missing))} "
                "Or pass allow_incomplete=True to read zeros for them."
            )

    def read_logits(
        self, models=slice(None), examples=slice(None), *, allow_incomplete: bool = False
    ) -> np.ndarray:
        """Reads logits lazily; only the selected chunks are loaded.

        Args:
          models: int, slice, index array or bool mask over models (outer indexing).
          examples: int, slice, index array or bool mask over examples (outer indexing).
          allow_incomplete: if False, raise when a selected model has no completion record
            (its logits would read as zeros).

        Returns:
          float32 array [models, examples, queries, classes] (int indices drop their axis).

        Raises:
          IncompleteStoreError: a selected model is missing and ``allow_incomplete`` is False.
        """
        if not allow_incomplete:
            self._check_written(models)
        return np.asarray(self._logits.oindex[models, examples].read().result(), np.float32)

    def records(self) -> list[dict]:
        """Returns the completion records of written blocks, sorted by start."""
        blocks = self.path / _BLOCKS_DIR
        if not blocks.is_dir():
            return []
        records = []
        for entry in os.scandir(blocks):
            if _RECORD_RE.match(entry.name):
                records.append(_read_json(Path(entry.path)))
        return sorted(records, key=lambda r: (r["start"], r["stop"]))

    def completed_ranges(self) -> list[tuple[int, int]]:
        """Returns the sorted ``[start, stop)`` model ranges that have completion records."""
        return [(int(r["start"]), int(r["stop"])) for r in self.records()]

    def _done_mask(self) -> np.ndarray:
        done = np.zeros(self.num_models, bool)
        for start, stop in self.completed_ranges():
            done[start:stop] = True
        return done

    def missing_models(self) -> np.ndarray:
        """Returns the sorted int64 indices of models not covered by any completion record."""
        return np.flatnonzero(~self._done_mask()).astype(np.int64)

    def missing_ranges(self) -> list[tuple[int, int]]:
        """Returns contiguous ``[start, stop)`` runs of missing models."""
        return _runs(self.missing_models())

    def is_complete(self, start: int = 0, stop: int | None = None) -> bool:
        """Whether every model in ``[start, stop)`` (default: all) has been written."""
        stop = self.num_models if stop is None else stop
        return bool(self._done_mask()[start:stop].all())

    def _fill_hint(self, ranges: Sequence[tuple[int, int]]) -> str:
        flags = " ".join(f"--model_range={a}:{b}" for a, b in ranges)
        return (
            "Fill them by re-running `python -m experiments.train_shadows` with the original "
            f"flags (--workdir={self.path.parent}) plus, per range (one job each, in parallel if "
            f"you like): {flags}"
        )

    def require_complete(self) -> None:
        """Raises ``IncompleteStoreError`` (listing the missing ranges) unless all are written."""
        missing = self.missing_ranges()
        if missing:
            count = sum(b - a for a, b in missing)
            raise IncompleteStoreError(
                f"Store at {self.path} is incomplete: {count} of {self.num_models} models are "
                f"missing, ranges {_fmt_ranges(missing)}. {self._fill_hint(missing)}"
            )

    def corrupt_blocks(self) -> list[tuple[int, int, str]]:
        """Re-reads every completed block and checks it against its record.

        Returns:
          ``(start, stop, reason)`` for each block whose config fingerprint differs, whose
          chunks cannot be read (torn or damaged files), or whose sha256 differs.
        """
        bad = []
        for r in self.records():
            a, b = int(r["start"]), int(r["stop"])
            if r.get("config_fingerprint") != self.metadata["config_fingerprint"]:
                bad.append((a, b, "config fingerprint differs"))
                continue
            try:
                data = self._logits[a:b].read().result()
                test = self._test_logits[a:b].read().result() if self.num_test_examples else None
            except ValueError as e:  # tensorstore: undecodable chunk
                bad.append((a, b, f"unreadable: {str(e).splitlines()[0][:200]}"))
                continue
            if _sha256(data) != r["sha256"]:
                bad.append((a, b, "sha256 differs"))
            elif test is not None and _sha256(test) != r.get("test_sha256"):
                bad.append((a, b, "test logits sha256 differs"))
        return bad

    def verify(self) -> None:
        """Raises ``StoreError`` naming every block that `corrupt_blocks` finds."""
        bad = self.corrupt_blocks()
        if bad:
            listed = ", ".join(f"{a}:{b} ({why})" for a, b, why in bad)
            raise StoreError(
                f"Store at {self.path} failed verification for blocks {listed}. Delete "
                f"their records in {self.path / _BLOCKS_DIR} and re-run train_shadows with "
                "--model_range for them."
            )

    # Writing.

    def _claims(self) -> list[tuple[Path, dict]]:
        claims = []
        for entry in os.scandir(self.path / _BLOCKS_DIR):
            if _CLAIM_RE.match(entry.name):
                try:
                    claims.append((Path(entry.path), _read_json(Path(entry.path))))
                except (OSError, ValueError):  # Released (or half-written) meanwhile.
                    continue
        return claims

    @contextlib.contextmanager
    def claim(self, start: int, stop: int, heartbeat_seconds: float = CLAIM_HEARTBEAT_SECONDS):
        """Claims models ``[start, stop)`` for this process while the block is trained.

        A claim is a file ``_blocks/m{start}-{stop}.claim`` (host, pid, time), created
        exclusively and removed on exit. Overlapping claims of live processes make this
        raise; claims left by dead processes are taken over. When two processes claim
        overlapping ranges at the same moment, the earlier claim (by time, then host and
        pid) wins and the other raises.

        Liveness: on this host, by the claim's pid. Across hosts (a shared filesystem) a
        claim is a lease: while held, a daemon thread touches the file every
        ``heartbeat_seconds``, and a claim of another host whose file is older than
        ``CLAIM_LEASE_SECONDS`` is taken as dead (a preempted or killed job) and taken over.

        Args:
          start, stop: the model range.
          heartbeat_seconds: how often the held claim's modification time is refreshed.

        Raises:
          BlockClaimedError: naming the other process and its claim file.
        """
        if not self._writable:
            raise StoreError(f"Store at {self.path} was opened read-only; cannot claim.")
        mine = {
            "start": int(start),
            "stop": int(stop),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "claimed_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds"),
        }
        key = lambda c: (c["claimed_at"], c["host"], c["pid"])  # noqa: E731

        def conflicts():
            out = []
            for path, other in self._claims():
                if other.get("pid") == mine["pid"] and other.get("host") == mine["host"]:
                    continue
                if not (other["start"] < stop and start < other["stop"]):
                    continue
                if _claim_is_stale(other, path):
                    path.unlink(missing_ok=True)
                    continue
                out.append((path, other))
            return out

        def refuse(path, other):
            raise BlockClaimedError(
                f"Models [{other['start']}, {other['stop']}) are being trained by "
                f"{other['host']} pid {other['pid']} since {other['claimed_at']} (claim file "
                f"{path}). If that job is dead, delete the claim file and re-run (a claim "
                f"of another host also lapses {CLAIM_LEASE_SECONDS / 60:.0f} min after its "
                "job's last heartbeat)."
            )

        for path, other in conflicts():
            refuse(path, other)
        own = self.path / _BLOCKS_DIR / f"m{start:06d}-{stop:06d}.claim"
        if not _write_json_atomic(own, mine, exclusive=True):
            other = _read_json(own)
            if not _claim_is_stale(other, own):
                refuse(own, other)
            own.unlink(missing_ok=True)
            if not _write_json_atomic(own, mine, exclusive=True):
                refuse(own, _read_json(own))
        stop_beating = threading.Event()
        beat = threading.Thread(
            target=_heartbeat, args=(own, heartbeat_seconds, stop_beating), daemon=True
        )
        try:
            for path, other in conflicts():  # A racing overlapping claim: earlier one wins.
                if key(other) < key(mine):
                    refuse(path, other)
            beat.start()
            yield
        finally:
            stop_beating.set()
            if beat.is_alive():
                beat.join()
            own.unlink(missing_ok=True)

    def write_block(
        self,
        start: int,
        logits: np.ndarray,
        extra: dict | None = None,
        test_logits: np.ndarray | None = None,
    ) -> None:
        """Writes the logits of models ``[start, start + B)`` and then their completion record.

        Args:
          start: index of the first model of the block.
          logits: [B, examples, queries, classes] finite floats (numpy or jax array).
          extra: JSON-serialisable dict stored in the record (e.g. per-model accuracies).
          test_logits: [B, test examples, classes]; required iff the store has test logits.

        Raises:
          StoreError: wrong shape, range outside ``[0, num_models)``, non-finite values
            (naming the models; nothing is written), overlap with a completed block, or a
            store opened read-only.
        """
        if not self._writable:
            raise StoreError(
                f"Store at {self.path} was opened read-only with open_store; use create_or_open "
                "to write."
            )
        logits = np.asarray(logits)
        expected = (self.num_examples, self.num_queries, self.num_classes)
        if logits.ndim != 4 or logits.shape[1:] != expected or logits.shape[0] < 1:
            raise StoreError(
                f"logits must have shape [B>=1, examples, queries, classes]=[B, "
                f"{', '.join(map(str, expected))}], got {logits.shape}."
            )
        start = int(start)
        stop = start + logits.shape[0]
        if start < 0 or stop > self.num_models:
            raise StoreError(
                f"Block [{start}, {stop}) is outside the store's models [0, {self.num_models})."
            )
        dtype = self.metadata.get("logits_dtype", "float32")
        with np.errstate(over="ignore"):
            stored = logits.astype(dtype)  # What will be on disk; float16 may overflow to inf.
        finite = np.isfinite(stored).reshape(stored.shape[0], -1).all(axis=1)
        if not finite.all():
            bad = (start + np.flatnonzero(~finite)).tolist()
            raise StoreError(
                f"logits of models {bad} contain NaN/inf (after casting to {dtype}); nothing was "
                "written. Check those models' training (learning rate, divergence)."
            )
        test_stored = None
        if (test_logits is None) != (self.num_test_examples == 0):
            raise StoreError(
                f"test_logits must be given exactly when the store has test examples "
                f"(it has {self.num_test_examples})."
            )
        if test_logits is not None:
            test_logits = np.asarray(test_logits)
            want = (logits.shape[0], self.num_test_examples, self.num_classes)
            if test_logits.shape != want:
                raise StoreError(f"test_logits must have shape {want}, got {test_logits.shape}.")
            with np.errstate(over="ignore"):
                test_stored = test_logits.astype(dtype)
            finite = np.isfinite(test_stored).reshape(want[0], -1).all(axis=1)
            if not finite.all():
                bad = (start + np.flatnonzero(~finite)).tolist()
                raise StoreError(
                    f"test logits of models {bad} contain NaN/inf; nothing was written. Check "
                    "those models' training (learning rate, divergence)."
                )
        extra = _to_json_dict({} if extra is None else extra, "extra")
        overlap = [(a, b) for a, b in self.completed_ranges() if a < stop and start < b]
        if overlap:
            raise StoreError(
                f"Block [{start}, {stop}) overlaps completed block(s) {_fmt_ranges(overlap)}; "
                "completed blocks are never overwritten. Write only missing_ranges(), or use a "
                "new --workdir."
            )
        with _io(f"writing models [{start}, {stop}) to {self.path}"):
            self._logits[start:stop].write(stored).result()
            if test_stored is not None:
                self._test_logits[start:stop].write(test_stored).result()
        failpoints.hit("logits_written")
        record = {
            "start": start,
            "stop": stop,
            "sha256": _sha256(stored),
            **({"test_sha256": _sha256(test_stored)} if test_stored is not None else {}),
            "config_fingerprint": self.metadata["config_fingerprint"],
            "written_at": _now(),
            "extra": extra,
        }
        name = f"m{start:06d}-{stop:06d}.json"
        path = self.path / _BLOCKS_DIR / name
        if not _write_json_atomic(path, record, exclusive=True, failpoint="record_renaming"):
            raise StoreError(
                f"Block [{start}, {stop}) was completed concurrently by another process; two jobs "
                "were given the same --model_range."
            )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # Alive, owned by someone else.
        return True
    return True


def _heartbeat(path: Path, every: float, stop: threading.Event) -> None:
    """Refreshes a held claim's modification time until `stop` is set."""
    while not stop.wait(every):
        try:
            os.utime(path)
        except OSError:  # Taken over after a long stall, or the store was moved: stop.
            return


def _claim_is_stale(claim: dict, path: Path) -> bool:
    """A claim is stale when its process is known dead: on this host, no such pid; on
    another host, no heartbeat for `CLAIM_LEASE_SECONDS`."""
    if claim.get("host") == socket.gethostname():
        return not _pid_alive(int(claim.get("pid", -1)))
    try:
        age = time.time() - path.stat().st_mtime
    except OSError:  # Released meanwhile.
        return True
    return age > CLAIM_LEASE_SECONDS


def _sha256(logits: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(logits, np.float32).tobytes()).hexdigest()

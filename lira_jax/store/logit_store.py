"""Creating, opening, reading, verifying and writing a logit store (see the package notes).

Design notes: a model block is the unit of work and of completeness. Because every chunk of
an array with a models axis holds exactly one model, any model range is chunk-aligned, so
independent processes (array jobs with disjoint ``--model_range``) write disjoint files and
never need a lock. A block becomes *visible* only through its completion record, written
atomically (temp file + rename) after its logits (and its per-block optional arrays) are
fully written; a crash mid-block leaves no record, and the block is simply missing and
re-done. Readers trust records, never the presence of chunks (unwritten chunks read as the
fill value 0). The group ``zarr.json`` is created first-writer-wins (temp file +
``os.link``), so concurrent ``create_or_open`` calls with the same spec are safe, and an
existing store is never modified by a caller with a different config. Each record holds the
sha256 of the block's float32 C-order bytes (for float16 stores: of the stored values cast to
float32), so ``LogitStore.verify`` can detect silent corruption.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorstore as ts

from lira_jax import failpoints
from lira_jax.store import claims as claims_lib
from lira_jax.store.errors import IncompleteStoreError, StoreError, StoreMismatchError
from lira_jax.store.files import (
    _array_sha256,
    _array_spec,
    _create_array,
    _io,
    _now,
    _read_json,
    _sha256,
    _write_json_atomic,
)
from lira_jax.store.schema import (
    LOGITS_DTYPES,
    META_KEY,
    OPTIONAL_ARRAYS,
    StoreSpec,
    _check_keep_labels,
    _check_matches,
    _metadata,
    _read_metadata,
    _to_json_dict,
    dims_of,
    present_arrays,
)

_BLOCKS_DIR = "_blocks"
_RECORD_RE = re.compile(r"^m(\d{6,})-(\d{6,})\.json$")


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


def _creation_arrays(
    spec: StoreSpec, logits_dtype: str, arrays: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The validated values of the spec's creation arrays (exactly those must be given)."""
    wanted = {n for n in spec.optional_arrays if not OPTIONAL_ARRAYS[n].per_block}
    given = {n for n, v in arrays.items() if v is not None}
    if given != wanted:
        extra, missing = sorted(given - wanted), sorted(wanted - given)
        raise StoreError(
            f"create_or_open needs exactly the creation arrays of the spec ({sorted(wanted)}); "
            + (f"missing {missing}" if missing else "")
            + ("; " if missing and extra else "")
            + (f"not in the spec: {extra}" if extra else "")
            + ". Arrays come with their spec: StoreSpec.optional_arrays (test arrays: "
            "num_test_examples > 0)."
        )
    return {
        n: OPTIONAL_ARRAYS[n].validate(arrays[n], spec.dims, logits_dtype) for n in sorted(wanted)
    }


def create_or_open(
    path: str | os.PathLike,
    spec: StoreSpec,
    keep: np.ndarray,
    labels: np.ndarray,
    logits_dtype: str = "float32",
    test_labels: np.ndarray | None = None,
    *,
    arrays: dict[str, np.ndarray] | None = None,
) -> LogitStore:
    """Creates a store at ``path``, or opens an existing one after checking it matches.

    Safe when several processes call it at the same time with the same spec: arrays are
    created with tensorstore's ``open=True, create=True`` and the group ``zarr.json`` is
    created first-writer-wins. An existing store is never modified, only validated.

    Args:
      path: store directory (the training binary uses ``workdir/store``).
      spec: shapes, query names, config and optional arrays of the store.
      keep: [models, examples] bool membership mask.
      labels: [examples] int true labels, in ``[0, num_classes)``.
      logits_dtype: ``"float32"`` or ``"float16"`` (halves the size; reads return float32).
      test_labels: [test examples] int labels; required iff ``spec.num_test_examples > 0``
        (the same as ``arrays={"test_labels": ...}``).
      arrays: the values of the spec's other creation-time optional arrays, by name (e.g.
        ``canary`` [N] bool, ``private_labels`` and ``train_labels`` [M, N] int; see
        `OPTIONAL_ARRAYS`): exactly those the spec lists.

    Returns:
      A writable ``LogitStore``.

    Raises:
      StoreMismatchError: the existing store has a different format version, shape, config
        (the message lists the differing keys, old -> new), logits dtype, optional arrays,
        keep, labels or creation-array values.
      StoreError: invalid arguments.
    """
    path = Path(path)
    if logits_dtype not in LOGITS_DTYPES:
        raise StoreError(f"logits_dtype must be one of {LOGITS_DTYPES}, got {logits_dtype!r}.")
    keep, labels = _check_keep_labels(spec, keep, labels)
    t = spec.num_test_examples
    if (test_labels is None) != (t == 0):
        raise StoreError(
            f"test_labels must be given exactly when spec.num_test_examples > 0 (it is {t})."
        )
    values = _creation_arrays(spec, logits_dtype, {**(arrays or {}), "test_labels": test_labels})
    if "groups" in values and values["groups"].max(initial=0) >= len(spec.group_names):
        raise StoreError(
            f"groups has value {values['groups'].max()} but only {len(spec.group_names)} "
            f"group_names {list(spec.group_names)}."
        )
    checksums = {
        "keep": _array_sha256(keep, "bool"),
        "labels": _array_sha256(labels, "int32"),
        **{
            n: _array_sha256(v, OPTIONAL_ARRAYS[n].dtype_in(logits_dtype))
            for n, v in values.items()
        },
    }
    expected = _metadata(spec, logits_dtype, checksums)
    m, n, a, c = spec.num_models, spec.num_examples, spec.num_queries, spec.num_classes

    if not (path / "zarr.json").exists():
        path.mkdir(parents=True, exist_ok=True)
        _create_array(path, "logits", (m, n, a, c), (1, n, a, c), logits_dtype, 0.0)
        _create_array(path, "keep", (m, n), (1, n), "bool", False)
        _create_array(path, "labels", (n,), (n,), "int32", 0)
        for name in spec.optional_arrays:
            opt = OPTIONAL_ARRAYS[name]
            dims = spec.dims
            dtype = opt.dtype_in(logits_dtype)
            _create_array(path, name, opt.shape(dims), opt.chunks(dims), dtype, opt.fill())
        (path / _BLOCKS_DIR).mkdir(exist_ok=True)
        _write_json_atomic(
            path / _BLOCKS_DIR / "zarr.json",
            {"zarr_format": 3, "node_type": "group", "attributes": {}},
            exclusive=True,
        )
        # keep/labels and the creation arrays are written before the group file exists; a
        # concurrent creator with the same spec writes identical bytes, and a store "exists"
        # only once zarr.json does.
        store = LogitStore(path, expected, writable=True)
        with _io(f"writing the keep mask and labels to {path}"):
            store._keep.write(keep).result()
            store._labels.write(labels).result()
            for name, value in values.items():
                store._optional[name].write(value).result()
        group = {"zarr_format": 3, "node_type": "group", "attributes": {META_KEY: expected}}
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
    checks += [(name, value, store.read_array(name)) for name, value in values.items()]
    for name, given, stored in checks:
        if not np.array_equal(given, stored):
            bad = np.argwhere(given != stored)
            raise StoreMismatchError(
                f"Existing store at {path} has a different `{name}` than the one given "
                f"({len(bad)} entries differ, first at index {tuple(int(i) for i in bad[0])}). "
                "The membership and the labels are functions of the config and seed, so the "
                "data or seed pipeline changed: use a new --workdir; never modify the existing "
                "store."
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


class LazyLogits:
    """A store's logits as a lazy [M, N, A, C] array: model slices are read on demand.

    What the signal reductions (`lira_jax.attacks.signal_bank_from_logits`) take, so that the
    whole logits array (9 GB for 256 x 50,000 x 18 x 10) is never in memory at once.
    """

    def __init__(self, store: LogitStore):
        self._store = store
        self.shape = (store.num_models, store.num_examples, store.num_queries, store.num_classes)
        self.ndim = 4
        self.dtype = np.dtype(np.float32)

    def __getitem__(self, index):
        return self._store.read_logits(models=index)


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
      optional_arrays: names of the optional arrays the store has (`OPTIONAL_ARRAYS`).
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
        self.optional_arrays = present_arrays(metadata)
        self._dims = dims_of(metadata)
        self._writable = writable
        mode = {"read": True, "write": writable}
        try:
            self._logits = ts.open(_array_spec(self.path, "logits"), **mode).result()
            self._keep = ts.open(_array_spec(self.path, "keep"), **mode).result()
            self._labels = ts.open(_array_spec(self.path, "labels"), **mode).result()
            self._optional = {
                name: ts.open(_array_spec(self.path, name), **mode).result()
                for name in self.optional_arrays
            }
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

    def has_array(self, name: str) -> bool:
        """Whether the store has optional array `name` (see `OPTIONAL_ARRAYS`)."""
        if name not in OPTIONAL_ARRAYS:
            raise StoreError(f"Unknown optional array {name!r}; known: {sorted(OPTIONAL_ARRAYS)}.")
        return name in self._optional

    def read_array(self, name: str, models=slice(None), *, allow_incomplete: bool = False):
        """Reads optional array `name`; `models` selects along its models axis, if any.

        Args:
          name: one of the store's `optional_arrays`.
          models: int, slice, index array or bool mask over models (arrays with a leading
            models axis only).
          allow_incomplete: per-block arrays: if False, raise when a selected model has no
            completion record (its rows would read as zeros).

        Raises:
          StoreError: the store does not have the array (the message says how to get it).
          IncompleteStoreError: a selected model is not written and not ``allow_incomplete``.
        """
        if not self.has_array(name):
            opt = OPTIONAL_ARRAYS[name]
            raise StoreError(f"Store at {self.path} has no {opt.description} ({name}); {opt.hint}.")
        opt, array = OPTIONAL_ARRAYS[name], self._optional[name]
        if not opt.models_axis:
            if models != slice(None):
                raise StoreError(f"{name} has no models axis; read it whole.")
            return array.read().result()
        if opt.per_block and not allow_incomplete:
            self._check_written(models)
        values = array[models].read().result()
        return np.asarray(values, np.float32) if opt.kind == "logits" else values

    def test_labels(self) -> np.ndarray:
        """Returns the [test examples] int32 labels of the held-out set."""
        return self.read_array("test_labels")

    def read_test_logits(self, models=slice(None), *, allow_incomplete: bool = False):
        """Reads the [models, test examples, classes] float32 held-out logits.

        Raises:
          StoreError: the store has no test logits, or (unless ``allow_incomplete``) a
            selected model is not written yet.
        """
        return self.read_array("test_logits", models, allow_incomplete=allow_incomplete)

    @property
    def group_names(self) -> tuple[str, ...]:
        """Names of the values of `groups()` (empty for a store without groups)."""
        return tuple(self.metadata.get("group_names", ()))

    def groups(self) -> np.ndarray:
        """Returns the [examples] int32 group of each example (`group_names` names them)."""
        return self.read_array("groups")

    def source_index(self) -> np.ndarray:
        """Returns the [examples] index of each example in its group's source dataset."""
        return self.read_array("source_index")

    def canary(self) -> np.ndarray:
        """Returns the [examples] bool canary mask (stores trained with canaries/label-DP)."""
        return self.read_array("canary")

    def private_labels(self, models=slice(None)) -> np.ndarray:
        """Returns [models, examples] int32 labels after the canary flips (what label-DP
        protects; the BLIA's ground truth)."""
        return self.read_array("private_labels", models)

    def train_labels(self, models=slice(None)) -> np.ndarray:
        """Returns [models, examples] int32 labels each model trained on (after randomized
        response)."""
        return self.read_array("train_labels", models)

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

    def completed_prefix(self) -> int:
        """The number k of leading models [0, k) that are all written (M when complete).

        A store grown block by block (`experiments.budget`) is read and attacked on this
        prefix: with the keep rule "pairs" every even prefix is a balanced store.
        """
        missing = self.missing_models()
        return int(missing[0]) if missing.size else self.num_models

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

    def _block_arrays(self) -> list[str]:
        return [n for n in self.optional_arrays if OPTIONAL_ARRAYS[n].per_block]

    def corrupt_blocks(self) -> list[tuple[int, int, str]]:
        """Re-reads every completed block and checks it against its record.

        Returns:
          ``(start, stop, reason)`` for each block whose config fingerprint differs, whose
          chunks cannot be read (torn or damaged files), or whose sha256 (of the logits or
          of a per-block optional array) differs.
        """
        bad = []
        for r in self.records():
            a, b = int(r["start"]), int(r["stop"])
            if r.get("config_fingerprint") != self.metadata["config_fingerprint"]:
                bad.append((a, b, "config fingerprint differs"))
                continue
            try:
                data = self._logits[a:b].read().result()
                extra = {n: self._optional[n][a:b].read().result() for n in self._block_arrays()}
            except ValueError as e:  # tensorstore: undecodable chunk
                bad.append((a, b, f"unreadable: {str(e).splitlines()[0][:200]}"))
                continue
            if _sha256(data) != r["sha256"]:
                bad.append((a, b, "sha256 differs"))
                continue
            for name, values in extra.items():
                opt = OPTIONAL_ARRAYS[name]
                dtype = opt.dtype_in(self.metadata.get("logits_dtype", "float32"))
                if _array_sha256(values, dtype) != r.get(opt.record_key or f"{name}_sha256"):
                    bad.append((a, b, f"{opt.description} sha256 differs"))
                    break
        return bad

    def corrupt_arrays(self) -> list[tuple[str, str]]:
        """Checks keep, labels and the creation-time optional arrays against the checksums
        in the metadata (stores written before those checksums existed: nothing to check).

        Returns:
          ``(name, reason)`` for each array that cannot be read or whose sha256 differs.
        """
        sums = self.metadata.get("array_sha256", {})
        handles = {"keep": (self._keep, "bool"), "labels": (self._labels, "int32")}
        logits_dtype = self.metadata.get("logits_dtype", "float32")
        for name, handle in self._optional.items():
            handles[name] = (handle, OPTIONAL_ARRAYS[name].dtype_in(logits_dtype))
        bad = []
        for name, want in sorted(sums.items()):
            if name not in handles:
                bad.append((name, "missing"))
                continue
            handle, dtype = handles[name]
            try:
                values = handle.read().result()
            except ValueError as e:
                bad.append((name, f"unreadable: {str(e).splitlines()[0][:200]}"))
                continue
            if _array_sha256(values, dtype) != want:
                bad.append((name, "sha256 differs"))
        return bad

    def verify(self) -> None:
        """Raises ``StoreError`` naming every block that `corrupt_blocks` finds and every
        array that `corrupt_arrays` finds."""
        bad = self.corrupt_blocks()
        bad_arrays = self.corrupt_arrays()
        if bad or bad_arrays:
            listed = ", ".join(f"{a}:{b} ({why})" for a, b, why in bad)
            arrays = ", ".join(f"{name} ({why})" for name, why in bad_arrays)
            raise StoreError(
                f"Store at {self.path} failed verification"
                + (
                    f" for blocks {listed}. Delete their records in {self.path / _BLOCKS_DIR} "
                    "and re-run train_shadows with --model_range for them."
                    if bad
                    else "."
                )
                + (
                    f" Arrays written at creation are damaged: {arrays}; re-create the store "
                    "in a new --workdir."
                    if bad_arrays
                    else ""
                )
            )

    # Writing.

    def claim(
        self, start: int, stop: int, heartbeat_seconds: float = claims_lib.CLAIM_HEARTBEAT_SECONDS
    ):
        """Claims models ``[start, stop)`` for this process while the block is trained.

        A context manager (see `lira_jax.store.claims.claim_range`): a claim file
        ``_blocks/m{start}-{stop}.claim`` (host, pid, time), created exclusively and removed
        on exit. Overlapping claims of live processes make this raise; claims left by dead
        processes (or, across hosts, without a heartbeat for ``CLAIM_LEASE_SECONDS``) are
        taken over. Of two overlapping claims made at the same moment, the earlier wins.

        Args:
          start, stop: the model range.
          heartbeat_seconds: how often the held claim's modification time is refreshed.

        Raises:
          BlockClaimedError: naming the other process and its claim file.
          StoreError: the store was opened read-only.
        """
        if not self._writable:
            raise StoreError(f"Store at {self.path} was opened read-only; cannot claim.")
        return claims_lib.claim_range(self.path / _BLOCKS_DIR, start, stop, heartbeat_seconds)

    def write_block(
        self,
        start: int,
        logits: np.ndarray,
        extra: dict | None = None,
        test_logits: np.ndarray | None = None,
        *,
        arrays: dict[str, np.ndarray] | None = None,
    ) -> None:
        """Writes the logits of models ``[start, start + B)`` and then their completion record.

        Args:
          start: index of the first model of the block.
          logits: [B, examples, queries, classes] finite floats (numpy or jax array).
          extra: JSON-serialisable dict stored in the record (e.g. per-model accuracies).
          test_logits: [B, test examples, classes]; required iff the store has test logits
            (the same as ``arrays={"test_logits": ...}``).
          arrays: the block's rows of the store's other per-block optional arrays, by name
            (exactly those the store has).

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
        block_arrays = self._validate_block_arrays(
            start, stop, {**(arrays or {}), "test_logits": test_logits}
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
            for name, values in block_arrays.items():
                self._optional[name][start:stop].write(values).result()
        failpoints.hit("logits_written")
        sums = {}
        for name, values in block_arrays.items():
            opt = OPTIONAL_ARRAYS[name]
            sums[opt.record_key or f"{name}_sha256"] = _array_sha256(values, opt.dtype_in(dtype))
        record = {
            "start": start,
            "stop": stop,
            "sha256": _sha256(stored),
            **sums,
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

    def _validate_block_arrays(self, start: int, stop: int, arrays: dict) -> dict:
        """The stored values of a block's per-block optional arrays (exactly the store's)."""
        wanted = set(self._block_arrays())
        given = {n for n, v in arrays.items() if v is not None}
        if given != wanted:
            names = sorted(wanted ^ given)
            if names == ["test_logits"]:
                raise StoreError(
                    f"test_logits must be given exactly when the store has test examples "
                    f"(it has {self.num_test_examples})."
                )
            raise StoreError(
                f"write_block needs exactly the store's per-block arrays {sorted(wanted)}; got "
                f"{sorted(given)}."
            )
        dtype = self.metadata.get("logits_dtype", "float32")
        out = {}
        for name in sorted(wanted):
            opt = OPTIONAL_ARRAYS[name]
            values = opt.validate(arrays[name], self._dims, dtype, first_model=start)
            if values.shape[0] != stop - start:
                raise StoreError(
                    f"{name} must have shape [{stop - start}, ...] (one row per model of the "
                    f"block), got {list(values.shape)}."
                )
            out[name] = values
        return out

"""What a store holds: its spec, metadata, and the table of optional arrays.

Design notes: a store always has ``logits`` [M, N, A, C], ``keep`` [M, N] and ``labels`` [N];
everything else is an *optional array*, declared once in `OPTIONAL_ARRAYS` (name, shape as a
function of the store's dimensions, dtype, chunking, when it is written, how its values are
validated, where its checksum lives). Creation, reopening, verification and reading all
go through that table, so adding an optional array is one `OptionalArray` entry (plus the
code that computes its values). Two kinds:
- *creation* arrays (``per_block=False``) are pure functions of the config and seed (test
  labels, canaries, per-model labels): written whole when the store is created, compared with
  the caller's values on every reopen (a mismatch means the data or seed pipeline changed),
  and checksummed in the metadata (``array_sha256``) for `LogitStore.verify`;
- *block* arrays (``per_block=True``, leading models axis) are computed by training (test-set
  logits): written by `LogitStore.write_block` with the logits of the same block, before its
  completion record, which holds their sha256 (``record_key``).
Arrays of one ``group`` come together (test logits with test labels; canaries with both
per-model label arrays). Which optional arrays a store has is in its metadata
(``optional_arrays``); stores written before that key existed have exactly the test arrays
when ``num_test_examples > 0``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from lira_jax.store.errors import TRAIN_HINT, StoreError, StoreMismatchError
from lira_jax.store.files import _now, _read_json, canonical_json

FORMAT_VERSION = 1

META_KEY = "lira_jax"
LOGITS_DTYPES = ("float32", "float16")


def _to_json_dict(config: dict, name: str = "config") -> dict:
    """Round-trips ``config`` through JSON so stored and given configs compare equal."""
    if not isinstance(config, dict):
        raise StoreError(f"{name} must be a dict, got {type(config).__name__}.")
    try:
        return json.loads(canonical_json(config))
    except (TypeError, ValueError) as e:
        raise StoreError(
            f"{name} must be JSON-serialisable (plain str/int/float/bool/None/list/dict, no NaN); "
            f"convert numpy scalars and arrays to Python values first: {e}"
        ) from e


def config_fingerprint(config: dict) -> str:
    """Returns the sha256 hex digest of the canonical JSON (sorted keys) of ``config``."""
    return hashlib.sha256(canonical_json(_to_json_dict(config)).encode()).hexdigest()


class Dims(NamedTuple):
    """A store's dimensions: models, examples, queries, classes, test examples."""

    m: int
    n: int
    a: int
    c: int
    t: int


@dataclasses.dataclass(frozen=True)
class OptionalArray:
    """One optional array of the store (see the module notes).

    Attributes:
      name: the array's path in the store.
      group: arrays of one group are present together.
      shape: the full shape, from the store's `Dims`.
      dtype: zarr data type; None: the store's logits dtype.
      kind: how values are validated: "logits" (finite floats; checksummed as float32),
        "labels" (ints in [0, C)), "index" (ints >= 0) or "mask" (bool, or 0/1).
      per_block: written by `write_block` with each block's logits (leading models axis);
        else written whole at creation.
      description: what it is, for messages.
      hint: how to get a store that has it.
      record_key: per-block arrays: the block record's key for the block's sha256
        (default ``{name}_sha256``).
      models_axis: the first axis is the models axis (always for per-block arrays): stored
        one model per chunk and selectable by model when read.
    """

    name: str
    group: str
    shape: Callable[[Dims], tuple[int, ...]]
    dtype: str | None
    kind: str
    per_block: bool
    description: str
    hint: str
    record_key: str | None = None
    models_axis: bool = False

    def __post_init__(self):
        if self.per_block:
            object.__setattr__(self, "models_axis", True)

    def dtype_in(self, logits_dtype: str) -> str:
        return logits_dtype if self.dtype is None else self.dtype

    def chunks(self, dims: Dims) -> tuple[int, ...]:
        """One model per chunk for arrays with a leading models axis (any model range is
        chunk-aligned, so blocks write disjoint files), else one chunk."""
        shape = self.shape(dims)
        return (1, *shape[1:]) if self.models_axis else shape

    def fill(self) -> Any:
        return {"logits": 0.0, "labels": 0, "index": 0, "mask": False}[self.kind]

    def validate(
        self, values: Any, dims: Dims, logits_dtype: str, *, first_model: int = 0
    ) -> np.ndarray:
        """The values as stored (cast to the array's dtype), or a `StoreError` naming the
        problem. Per-block arrays take the rows of one block: [B, ...] with B >= 1."""
        values = np.asarray(values)
        want = self.shape(dims)
        if self.per_block:
            ok = values.ndim == len(want) and values.shape[1:] == want[1:] and len(values) >= 1
            want_s = f"[B, {', '.join(map(str, want[1:]))}]"
        else:
            ok = values.shape == want
            want_s = f"{list(want)}"
        if not ok:
            raise StoreError(
                f"{self.name} ({self.description}) must have shape {want_s}, got "
                f"{list(values.shape)}."
            )
        dtype = self.dtype_in(logits_dtype)
        if self.kind == "mask":
            if values.dtype != np.bool_ and not np.isin(values, (0, 1)).all():
                raise StoreError(f"{self.name} must be boolean (or 0/1), got dtype {values.dtype}.")
            return values.astype(bool)
        if self.kind == "labels":
            if not np.issubdtype(values.dtype, np.integer):
                raise StoreError(f"{self.name} must be integers, got dtype {values.dtype}.")
            if values.size and (values.min() < 0 or values.max() >= dims.c):
                raise StoreError(
                    f"{self.name} must lie in [0, num_classes={dims.c}), got range "
                    f"[{values.min()}, {values.max()}]."
                )
            return values.astype(dtype)
        if self.kind == "index":
            if not np.issubdtype(values.dtype, np.integer) or (values.size and values.min() < 0):
                raise StoreError(
                    f"{self.name} ({self.description}) must be integers >= 0, got dtype "
                    f"{values.dtype}" + (f", minimum {values.min()}." if values.size else ".")
                )
            return values.astype(dtype)
        with np.errstate(over="ignore"):
            stored = values.astype(dtype)  # float16 may overflow to inf
        finite = np.isfinite(stored).reshape(stored.shape[0], -1).all(axis=1)
        if not finite.all():
            bad = (first_model + np.flatnonzero(~finite)).tolist()
            raise StoreError(
                f"{self.description} of models {bad} contain NaN/inf (after casting to {dtype}); "
                "nothing was written. Check those models' training (learning rate, divergence)."
            )
        return stored


_TEST_HINT = "train with --store_test_logits (in a new --workdir) to get them"
_LABELS_HINT = (
    "train with --num_canaries=K and/or --label_dp_epsilon=E (in a new --workdir) to get them"
)

# The optional arrays. To add one: an entry here, its values in `create_or_open(arrays=...)`
# (creation arrays) or `write_block(arrays=...)` (block arrays), and a reader if it deserves
# a named one.
OPTIONAL_ARRAYS: dict[str, OptionalArray] = {
    a.name: a
    for a in (
        OptionalArray(
            "test_logits",
            group="test",
            shape=lambda d: (d.m, d.t, d.c),
            dtype=None,
            kind="logits",
            per_block=True,
            description="test logits",
            hint=_TEST_HINT,
            record_key="test_sha256",
        ),
        OptionalArray(
            "test_labels",
            group="test",
            shape=lambda d: (d.t,),
            dtype="int32",
            kind="labels",
            per_block=False,
            description="labels of the held-out examples",
            hint=_TEST_HINT,
        ),
        OptionalArray(
            "canary",
            group="label_noise",
            shape=lambda d: (d.n,),
            dtype="bool",
            kind="mask",
            per_block=False,
            description="canary examples",
            hint=_LABELS_HINT,
        ),
        OptionalArray(
            "private_labels",
            group="label_noise",
            shape=lambda d: (d.m, d.n),
            dtype="int32",
            kind="labels",
            per_block=False,
            description="per-model labels after the canary flips",
            hint=_LABELS_HINT,
            models_axis=True,
        ),
        OptionalArray(
            "train_labels",
            group="label_noise",
            shape=lambda d: (d.m, d.n),
            dtype="int32",
            kind="labels",
            per_block=False,
            description="per-model labels after randomized response (what each model saw)",
            hint=_LABELS_HINT,
            models_axis=True,
        ),
        OptionalArray(
            "groups",
            group="groups",
            shape=lambda d: (d.n,),
            dtype="int32",
            kind="index",
            per_block=False,
            description="group of each example (names in the metadata's group_names)",
            hint="train a mixture (--mixture=random|subpopulation|singletons) to get them",
        ),
        OptionalArray(
            "source_index",
            group="source_index",
            shape=lambda d: (d.n,),
            dtype="int64",
            kind="index",
            per_block=False,
            description="index of each example in its source dataset (its group's source)",
            hint="train a mixture (--mixture=random|subpopulation|singletons) to get them",
        ),
        OptionalArray(
            "audit_canary",
            group="audit_canary",
            shape=lambda d: (d.n,),
            dtype="bool",
            kind="mask",
            per_block=False,
            description="DP-audit canaries (planted worst-case examples)",
            hint="train with --audit_canaries=K (in a new --workdir) to get them",
        ),
    )
}


def _group_members(group: str) -> set[str]:
    return {a.name for a in OPTIONAL_ARRAYS.values() if a.group == group}


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
      optional_arrays: names of the `OPTIONAL_ARRAYS` the store has (whole groups); the test
        group is implied by ``num_test_examples > 0``. Stored sorted.
      group_names: the name of each value of the ``groups`` array (e.g.
        ``("over_represented", "under_represented")``); given exactly when the store has
        ``groups``.
    """

    num_models: int
    num_examples: int
    num_queries: int
    num_classes: int
    query_names: tuple[str, ...]
    config: dict
    num_test_examples: int = 0
    optional_arrays: tuple[str, ...] = ()
    group_names: tuple[str, ...] = ()

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
        if isinstance(self.optional_arrays, str):
            raise StoreError(
                f"StoreSpec.optional_arrays must be a sequence of names, got "
                f"{self.optional_arrays!r}."
            )
        names = set(self.optional_arrays)
        unknown = names - set(OPTIONAL_ARRAYS)
        if unknown:
            raise StoreError(
                f"StoreSpec.optional_arrays has unknown names {sorted(unknown)}; known: "
                f"{sorted(OPTIONAL_ARRAYS)}."
            )
        test = _group_members("test")
        if names & test and not self.num_test_examples:
            raise StoreError(
                "StoreSpec.optional_arrays lists test arrays but num_test_examples is 0; set "
                "num_test_examples (which implies them) instead."
            )
        if self.num_test_examples:
            names |= test
        for name in sorted(names):
            missing = _group_members(OPTIONAL_ARRAYS[name].group) - names
            if missing:
                raise StoreError(
                    f"StoreSpec.optional_arrays has {name!r} without {sorted(missing)}: the "
                    f"arrays of group {OPTIONAL_ARRAYS[name].group!r} come together."
                )
        object.__setattr__(self, "optional_arrays", tuple(sorted(names)))
        groups = tuple(self.group_names)
        if ("groups" in names) != bool(groups) or not all(isinstance(g, str) for g in groups):
            raise StoreError(
                f"StoreSpec.group_names ({groups!r}) must name every group (strings) exactly "
                "when the store has a `groups` array."
            )
        if len(set(groups)) != len(groups):
            raise StoreError(f"StoreSpec.group_names must be distinct, got {groups!r}.")
        object.__setattr__(self, "group_names", groups)

    @property
    def dims(self) -> Dims:
        return Dims(
            self.num_models,
            self.num_examples,
            self.num_queries,
            self.num_classes,
            self.num_test_examples,
        )


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


def _metadata(spec: StoreSpec, logits_dtype: str, array_sha256: dict[str, str]) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "num_models": spec.num_models,
        "num_examples": spec.num_examples,
        "num_queries": spec.num_queries,
        "num_classes": spec.num_classes,
        "num_test_examples": spec.num_test_examples,
        "query_names": list(spec.query_names),
        "logits_dtype": logits_dtype,
        "optional_arrays": list(spec.optional_arrays),
        "array_sha256": array_sha256,
        **({"group_names": list(spec.group_names)} if spec.group_names else {}),
        "config": spec.config,
        "config_fingerprint": config_fingerprint(spec.config),
        "library_versions": _library_versions(),
        "created_at": _now(),
    }


def dims_of(meta: dict) -> Dims:
    """The `Dims` of a store's metadata."""
    return Dims(
        int(meta["num_models"]),
        int(meta["num_examples"]),
        int(meta["num_queries"]),
        int(meta["num_classes"]),
        int(meta.get("num_test_examples", 0)),
    )


def present_arrays(meta: dict) -> tuple[str, ...]:
    """The optional arrays of a store, from its metadata (older stores: the test arrays iff
    they have test examples)."""
    if "optional_arrays" in meta:
        return tuple(sorted(meta["optional_arrays"]))
    return tuple(sorted(_group_members("test"))) if meta.get("num_test_examples", 0) else ()


def _read_metadata(path: Path) -> dict:
    group_file = path / "zarr.json"
    if not group_file.is_file():
        hint = ""
        if (path / "store" / "zarr.json").is_file():
            hint = f" (did you mean {path / 'store'}?)"
        raise StoreError(f"No logit store at {path}{hint}: {TRAIN_HINT}.")
    try:
        group = _read_json(group_file)
        meta = group["attributes"][META_KEY]
        version = meta["format_version"]
    except (ValueError, KeyError, TypeError) as e:
        raise StoreError(
            f"{group_file} is not a lira_jax logit store (no attributes.{META_KEY}."
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
    if meta.get("group_names", []) != expected.get("group_names", []):
        problems.append(
            f"  group_names: {meta.get('group_names')} -> {expected.get('group_names')}"
        )
    if list(present_arrays(meta)) != expected["optional_arrays"]:
        problems.append(
            f"  optional_arrays: {list(present_arrays(meta))} -> {expected['optional_arrays']}"
        )
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

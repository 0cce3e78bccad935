"""Files of the store: atomic JSON/text writes, tensorstore arrays, checksums, I/O errors.

Design notes: every file a reader may see is written whole — JSON via a temp file in the same
directory and a rename (or `os.link` for first-writer-wins creation), arrays through
tensorstore — and tensorstore's I/O failures are turned back into `OSError`s, which the
binaries report in one line.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import tensorstore as ts

from lira_jax import failpoints
from lira_jax.store.errors import StoreMismatchError

CODECS = [
    {"name": "bytes", "configuration": {"endian": "little"}},
    {"name": "zstd", "configuration": {"level": 3}},
]


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


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


def write_arrays_atomic(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Writes named arrays as one uncompressed ``.npz`` (`numpy.savez`, readable with
    ``numpy.load``) via a temp file + rename; the parent directory is created if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_json(path: Path) -> Any:
    with open(path) as f:
        return json.load(f)


def _array_spec(path: Path, name: str) -> dict:
    return {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(path / name)}}


def _create_array(path: Path, name: str, shape, chunks, dtype: str, fill) -> ts.TensorStore:
    spec = _array_spec(path, name)
    spec["metadata"] = {
        "shape": list(shape),
        "data_type": dtype,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(chunks)}},
        "chunk_key_encoding": {"name": "default"},
        "codecs": CODECS,
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


def _sha256(logits: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(logits, np.float32).tobytes()).hexdigest()


def _array_sha256(values: np.ndarray, dtype: str) -> str:
    """sha256 of an array's little-endian C-order bytes in its stored dtype (floats: float32,
    as the logits' checksums)."""
    if np.issubdtype(np.dtype(dtype), np.floating):
        return _sha256(values)
    data = np.ascontiguousarray(values, np.dtype(dtype).newbyteorder("<"))
    return hashlib.sha256(data.tobytes()).hexdigest()

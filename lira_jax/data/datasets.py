"""Dataset registry: every dataset comes back as host numpy arrays.

Design notes: datasets are small enough for the training pool to live on the
device in full (the engine gathers per-model batches from it), so the registry
returns whole arrays, not iterators. Images are float32 NHWC scaled to [0, 1]
then standardised with the training-pool mean/std per channel. Embedded
datasets (scikit-learn's bundled `digits`) need no files; tfds datasets are read
only from an already prepared `data_dir` (preparing them needs TensorFlow, a
user-side step); Fashion-MNIST can also be read from gzip'd IDX files such as
those of Debian's `dataset-fashion-mnist` package. Tabular datasets (`breast_cancer`,
scikit-learn's embedded 569 x 30 set) come back as [N, F] features standardised per
feature; they have no augmentation and only the identity query (`Dataset.tabular`).

A user's own data enters as arrays (`from_arrays`) or as a file, ``npz:PATH`` (`NPZ_FORMAT`
gives the file's contract); both are validated with one error per problem and then take
the same standardisation, tasks and ``max_train`` as every built-in set. A file's sha256 is
part of the loaded `Dataset` (``source_sha256``), so a run can refuse a file that changed
since its store was written.

`cifar_synth` is generated from a seed (`lira_jax.data.synthetic`): CIFAR-10's shapes and
sizes where no prepared copy exists (benchmarks, the accelerator check, tests).
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import struct
import zipfile

import numpy as np


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A classification dataset as arrays.

    Attributes:
      name: registry name.
      x_train: [N, H, W, C] float32 images, or [N, F] float32 features for tabular data:
        the membership pool the shadow models draw from.
      y_train: [N] int32.
      x_test: [N_test, ...] float32, never trained on (for accuracy).
      y_test: [N_test] int32.
      num_classes: number of classes.
      mirror_ok: whether a horizontal flip preserves the label (natural images yes,
        digits no); decides the default train augmentation and query set.
      task: the label task the dataset was restricted/relabelled to (`lira_jax.data.tasks`):
        "all" for the dataset's own classes.
      source_sha256: sha256 of the file the data came from (``npz:`` datasets), else None.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    mirror_ok: bool
    task: str = "all"
    source_sha256: str | None = None

    @property
    def image_shape(self) -> tuple[int, ...]:
        """Shape of one example: [H, W, C] for images, [F] for tabular data."""
        return tuple(self.x_train.shape[1:])

    @property
    def tabular(self) -> bool:
        """Whether examples are flat feature vectors ([N, F]): no shifts, mirrors or crops."""
        return self.x_train.ndim == 2


class DatasetError(ValueError):
    """A dataset cannot be loaded; the message says why and what to do."""


_TFDS_NAMES = {
    # name: (tfds name, mirror_ok)
    "mnist": ("mnist", False),
    "fashion_mnist": ("fashion_mnist", True),
    "cifar10": ("cifar10", True),
    "cifar100": ("cifar100", True),
    "svhn_cropped": ("svhn_cropped", False),
}
_EMBEDDED = ("digits", "breast_cancer")
# Generated from a seed, no files (`lira_jax.data.synthetic`): CIFAR-10's shapes and sizes.
_SYNTHETIC = ("cifar_synth",)
_IDX = ("fashion_mnist_idx",)
# Where Debian's `dataset-fashion-mnist` puts the four .gz files (`dpkg -L
# dataset-fashion-mnist`).
DEFAULT_IDX_DIR = "/usr/share/datasets/fashion-mnist"


NPZ_PREFIX = "npz:"

NPZ_FORMAT = """\
npz:PATH, a numpy .npz file (np.savez / np.savez_compressed) with the arrays
  x_train  [N, H, W, C] images (uint8: scaled by 1/255; float: taken as they are) or
           [N, F] tabular features (float or int); N >= 2
  y_train  [N] integer class labels in [0, num_classes)
  x_test   [T, ...] the same example shape and kind as x_train; T >= 1
  y_test   [T] integer class labels in [0, num_classes)
and optionally
  num_classes  integer scalar (default: the largest label + 1; at least 2)
  mirror_ok    bool scalar: a horizontal flip keeps the label (default False: no mirrored
               augmentation or queries)
No value may be NaN or infinite. Other arrays in the file are ignored."""


def dataset_names() -> tuple[str, ...]:
    """The registry's names (a user's file is ``npz:PATH``, see `NPZ_FORMAT`)."""
    return _EMBEDDED + tuple(_TFDS_NAMES) + _IDX + _SYNTHETIC


def is_dataset_name(name: str) -> bool:
    """Whether `name` is a registry name or an ``npz:PATH`` (the file is not opened)."""
    return name in dataset_names() or (
        isinstance(name, str) and name.startswith(NPZ_PREFIX) and len(name) > len(NPZ_PREFIX)
    )


def canonical_dataset_name(name: str) -> str:
    """`name`, with an ``npz:`` path made absolute (``~`` expanded), so that the name a
    store records does not depend on the directory a command ran in."""
    if isinstance(name, str) and name.startswith(NPZ_PREFIX) and len(name) > len(NPZ_PREFIX):
        path = os.path.abspath(os.path.expanduser(name[len(NPZ_PREFIX) :]))
        return NPZ_PREFIX + path
    return name


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes (read in 1 MiB pieces)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for piece in iter(lambda: f.read(1 << 20), b""):
            digest.update(piece)
    return digest.hexdigest()


def _standardise(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standardises with the training pool's statistics per channel (images) or feature
    (tabular): over every axis but the last."""
    axes = tuple(range(x_train.ndim - 1))
    mean = x_train.mean(axis=axes, keepdims=True)
    std = x_train.std(axis=axes, keepdims=True) + 1e-6
    return ((x_train - mean) / std).astype(np.float32), ((x_test - mean) / std).astype(np.float32)


def _npz_path(name: str) -> str:
    path = canonical_dataset_name(name)[len(NPZ_PREFIX) :]
    if not os.path.isfile(path):
        raise DatasetError(
            f"dataset={name!r}: no file {path}. Give --dataset=npz:PATH, PATH an .npz file "
            f"holding x_train, y_train, x_test, y_test:\n{NPZ_FORMAT}"
        )
    return path


def npz_example_shape(name: str) -> tuple[int, ...]:
    """The shape of one example of an ``npz:`` dataset (x_train's shape without N), read
    from the file's array header only (nothing is decompressed)."""
    path = _npz_path(name)
    try:
        with zipfile.ZipFile(path) as archive, archive.open("x_train.npy") as f:
            version = np.lib.format.read_magic(f)
            read = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, _, _ = read(f)
    except KeyError:
        raise DatasetError(
            f"dataset={name!r}: {path} has no array 'x_train'.\n{NPZ_FORMAT}"
        ) from None
    except (zipfile.BadZipFile, ValueError, OSError) as e:
        raise DatasetError(f"dataset={name!r}: {path} is not a readable .npz file ({e}).") from e
    return tuple(int(d) for d in shape[1:])


def _check_split(name: str, what: str, x: np.ndarray, y: np.ndarray, min_size: int) -> None:
    if x.ndim not in (2, 4):
        raise DatasetError(
            f"{name}: x_{what} has shape {x.shape} (rank {x.ndim}); it must be [N, H, W, C] "
            "images or [N, F] tabular features (add a channel axis to grayscale images: "
            "x[..., None])."
        )
    if x.shape[0] < min_size:
        raise DatasetError(
            f"{name}: the {what} split is empty or too small ({x.shape[0]} examples; at least "
            f"{min_size} needed)."
        )
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise DatasetError(
            f"{name}: y_{what} has shape {y.shape} but x_{what} has {x.shape[0]} examples; "
            f"y_{what} must be [{x.shape[0]}], one label per example."
        )
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise DatasetError(f"{name}: x_{what} has dtype {x.dtype}; it must hold numbers.")
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        bad = np.argwhere(~np.isfinite(x))[0]
        raise DatasetError(
            f"{name}: x_{what} holds {int((~np.isfinite(x)).sum())} NaN or infinite value(s), "
            f"the first at index {tuple(int(i) for i in bad)}; clean or drop those examples."
        )
    if not np.issubdtype(y.dtype, np.integer) and y.dtype != np.bool_:
        raise DatasetError(
            f"{name}: y_{what} has dtype {y.dtype}; class labels must be integers "
            "(e.g. y.astype(np.int64) after checking they are whole numbers)."
        )


def from_arrays(
    x_train,
    y_train,
    x_test,
    y_test,
    num_classes: int | None = None,
    *,
    name: str = "arrays",
    mirror_ok: bool = False,
    source_sha256: str | None = None,
) -> Dataset:
    """A user's own data as an unstandardised `Dataset`, validated (see `NPZ_FORMAT`).

    ``standardise(from_arrays(...), max_train)`` is then the pool a run would train on,
    exactly as for a registry dataset (``npz:PATH`` files go through this function).

    Args:
      x_train: [N, H, W, C] images (uint8: divided by 255; float: as given) or [N, F]
        tabular features.
      y_train: [N] integer labels in [0, num_classes).
      x_test, y_test: the held-out split, same example shape and kind.
      num_classes: number of classes (default: the largest label + 1).
      name: the dataset's name (``npz:PATH`` for files).
      mirror_ok: a horizontal flip preserves the labels (images only).
      source_sha256: sha256 of the file the arrays came from, if any.

    Returns:
      A `Dataset` with float32 inputs (uint8 images scaled to [0, 1]) and int32 labels.

    Raises:
      DatasetError: one message per problem: wrong rank, mismatched lengths, an empty
        split, NaN/inf, non-integer labels, labels out of range, differing example shapes.
    """
    arrays = {
        k: np.asarray(v)
        for k, v in (
            ("x_train", x_train),
            ("y_train", y_train),
            ("x_test", x_test),
            ("y_test", y_test),
        )
    }
    _check_split(name, "train", arrays["x_train"], arrays["y_train"], 2)
    _check_split(name, "test", arrays["x_test"], arrays["y_test"], 1)
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        raise DatasetError(
            f"{name}: x_train examples have shape {arrays['x_train'].shape[1:]} but x_test "
            f"examples {arrays['x_test'].shape[1:]}; both splits need the same example shape."
        )
    if (arrays["x_train"].dtype == np.uint8) != (arrays["x_test"].dtype == np.uint8):
        raise DatasetError(
            f"{name}: x_train is {arrays['x_train'].dtype} but x_test {arrays['x_test'].dtype}: "
            "give both splits as uint8 images or both as floats (uint8 is scaled by 1/255)."
        )
    y_all = np.concatenate([arrays["y_train"], arrays["y_test"]]).astype(np.int64)
    if num_classes is None:
        num_classes = int(y_all.max()) + 1
    if isinstance(num_classes, bool) or int(num_classes) != num_classes or num_classes < 2:
        raise DatasetError(f"{name}: num_classes={num_classes!r} must be an integer >= 2.")
    num_classes = int(num_classes)
    for what in ("train", "test"):
        y = arrays[f"y_{what}"].astype(np.int64)
        out = (y < 0) | (y >= num_classes)
        if out.any():
            i = int(np.flatnonzero(out)[0])
            raise DatasetError(
                f"{name}: {int(out.sum())} label(s) of y_{what} lie outside [0, num_classes="
                f"{num_classes}), the first y_{what}[{i}] = {int(y[i])}; labels must be class "
                "indices 0..C-1 (give num_classes if some classes are absent)."
            )
    if mirror_ok and arrays["x_train"].ndim != 4:
        raise DatasetError(f"{name}: mirror_ok=True needs images; the data are tabular.")
    scale = 255.0 if arrays["x_train"].dtype == np.uint8 else 1.0  # as the IDX reader does
    return Dataset(
        name=name,
        x_train=(arrays["x_train"] / scale).astype(np.float32),
        y_train=arrays["y_train"].astype(np.int32),
        x_test=(arrays["x_test"] / scale).astype(np.float32),
        y_test=arrays["y_test"].astype(np.int32),
        num_classes=num_classes,
        mirror_ok=bool(mirror_ok),
        source_sha256=source_sha256,
    )


def _load_npz(name: str) -> Dataset:
    path = _npz_path(name)
    sha = file_sha256(path)
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise DatasetError(
                f"dataset={name!r}: {path} holds a single array, not an .npz archive; save "
                f"the four arrays with np.savez(path, x_train=..., y_train=..., x_test=..., "
                f"y_test=...).\n{NPZ_FORMAT}"
            )
        with loaded as f:
            present = sorted(f.files)
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in present]
            if missing:
                raise DatasetError(
                    f"dataset={name!r}: {path} lacks {missing} (it holds {present}).\n{NPZ_FORMAT}"
                )
            arrays = {k: f[k] for k in ("x_train", "y_train", "x_test", "y_test")}
            extras = {k: f[k] for k in ("num_classes", "mirror_ok") if k in present}
    except (zipfile.BadZipFile, ValueError, OSError) as e:
        if isinstance(e, DatasetError):
            raise
        raise DatasetError(f"dataset={name!r}: {path} is not a readable .npz file ({e}).") from e
    for key, value in extras.items():
        if value.shape != ():
            raise DatasetError(
                f"dataset={name!r}: {key} must be a scalar, got shape {value.shape}."
            )
    num_classes = extras["num_classes"].item() if "num_classes" in extras else None
    mirror_ok = bool(extras["mirror_ok"].item()) if "mirror_ok" in extras else False
    return from_arrays(
        **arrays,
        num_classes=num_classes,
        name=canonical_dataset_name(name),
        mirror_ok=mirror_ok,
        source_sha256=sha,
    )


def _raw(name, x_train, y_train, x_test, y_test, num_classes, mirror_ok) -> Dataset:
    return Dataset(
        name=name,
        x_train=np.asarray(x_train, np.float32),
        y_train=np.asarray(y_train).astype(np.int32),
        x_test=np.asarray(x_test, np.float32),
        y_test=np.asarray(y_test).astype(np.int32),
        num_classes=int(num_classes),
        mirror_ok=mirror_ok,
    )


def standardise(ds: Dataset, max_train: int | None = None) -> Dataset:
    """The pool of a run: the first `max_train` training examples of a raw dataset,
    standardised (train and test) with the pool's mean and std per channel or feature."""
    if max_train is not None and max_train < 2:
        raise DatasetError(f"max_train={max_train} must be at least 2 (or unset for all).")
    x_train, y_train = ds.x_train, ds.y_train
    if max_train is not None:
        x_train, y_train = x_train[:max_train], y_train[:max_train]
    x_train, x_test = _standardise(x_train, ds.x_test)
    return dataclasses.replace(ds, x_train=x_train, y_train=y_train, x_test=x_test)


def _load_digits(num_test: int = 297):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[..., None]  # [1797, 8, 8, 1]
    y = bunch.target.astype(np.int32)
    # A fixed split (seed 0) so every run and every process sees the same pool.
    order = np.random.default_rng(0).permutation(len(y))
    test, train = order[:num_test], order[num_test:]
    return x[train], y[train], x[test], y[test]


def _load_breast_cancer(num_test: int = 113):
    """scikit-learn's embedded Wisconsin breast cancer set: 569 x 30 features, 2 classes
    (0 malignant, 1 benign). A fixed split (a permutation drawn with seed 0, whatever the run's
    seed): 456 train / 113 test (about 20 %)."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    x = bunch.data.astype(np.float32)  # [569, 30]
    y = bunch.target.astype(np.int32)
    order = np.random.default_rng(0).permutation(len(y))
    test, train = order[:num_test], order[num_test:]
    return x[train], y[train], x[test], y[test]


def _read_idx(path: str) -> np.ndarray:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise DatasetError(f"{path} is not an unsigned-byte IDX file (header {data[:4]!r}).")
    shape = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _load_idx_dir(data_dir: str | None):
    default = not data_dir
    data_dir = DEFAULT_IDX_DIR if default else data_dir
    files = {}
    for part in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        for suffix in (".gz", ""):
            candidate = os.path.join(data_dir, part + suffix)
            if os.path.exists(candidate):
                files[part] = candidate
                break
        else:
            where = f"the default directory {data_dir}" if default else f"data_dir={data_dir!r}"
            raise DatasetError(
                f"fashion_mnist_idx: {part}[.gz] not found in {where}. Install Debian's "
                "'dataset-fashion-mnist' package (apt-get install dataset-fashion-mnist) or "
                "pass --data_dir pointing at the IDX files."
            )
    x_train = _read_idx(files["train-images-idx3-ubyte"])[..., None] / 255.0
    y_train = _read_idx(files["train-labels-idx1-ubyte"])
    x_test = _read_idx(files["t10k-images-idx3-ubyte"])[..., None] / 255.0
    y_test = _read_idx(files["t10k-labels-idx1-ubyte"])
    return x_train, y_train, x_test, y_test


def _tfds_split_arrays(builder, split: str) -> dict[str, np.ndarray]:
    """Reads one split of a prepared tfds dataset into arrays, without TensorFlow if possible."""
    try:
        source = builder.as_data_source(split=split)  # random-access, no TensorFlow needed
        records = [source[i] for i in range(len(source))]
        return {k: np.stack([r[k] for r in records]) for k in ("image", "label")}
    except Exception:  # e.g. a dataset prepared as tfrecord: needs TensorFlow to read
        import tensorflow_datasets as tfds

        ds = builder.as_dataset(split=split, batch_size=-1)
        return {k: np.asarray(v) for k, v in tfds.as_numpy(ds).items() if k in ("image", "label")}


def _load_tfds(tfds_name: str, data_dir: str | None):
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(tfds_name, data_dir=data_dir)
    except Exception as e:  # tfds raises many types for a missing/unknown dir
        raise DatasetError(
            f"Could not open tfds dataset {tfds_name!r} in data_dir={data_dir!r}: {e}"
        ) from e
    # Read first and ask `is_prepared` only on failure: under `tfds.testing.mock_data` a
    # dataset reads fine without being prepared.
    try:
        train, test = (_tfds_split_arrays(builder, split) for split in ("train", "test"))
    except Exception as e:
        if not builder.is_prepared():
            raise DatasetError(
                f"tfds dataset {tfds_name!r} is not prepared in data_dir={data_dir!r} "
                f"(looked in {builder.data_dir}). Prepare it once where TensorFlow and the "
                f"network are available (`tfds build {tfds_name} --file_format=array_record "
                "--data_dir=DIR`) and pass --data_dir=DIR; this library never downloads data."
            ) from None
        raise DatasetError(
            f"Could not read prepared tfds dataset {tfds_name!r} from {builder.data_dir}: {e}. "
            "Datasets prepared as tfrecord need TensorFlow installed to read; array_record "
            "ones do not (`tfds build ... --file_format=array_record`)."
        ) from e
    num_classes = builder.info.features["label"].num_classes
    return (
        train["image"] / 255.0,
        train["label"],
        test["image"] / 255.0,
        test["label"],
        num_classes,
    )


def load_raw(
    name: str, data_dir: str | None = None, *, expected_sha256: str | None = None
) -> Dataset:
    """Loads a dataset by registry name or ``npz:PATH``, unstandardised: images in [0, 1],
    tabular features as published, every training example. Mixtures combine raw datasets
    and standardise once (`standardise`) after mixing.

    Args:
      name: one of `dataset_names()`, or ``npz:PATH`` (`NPZ_FORMAT`).
      data_dir: where tfds / IDX data live.
      expected_sha256: for ``npz:`` files, the sha256 a store recorded: a file whose bytes
        changed since is refused.

    Raises:
      DatasetError: unknown name, the data is not available locally, an invalid file, or
        a file that changed.
    """
    if isinstance(name, str) and name.startswith(NPZ_PREFIX):
        ds = _load_npz(name)
        if expected_sha256 is not None and ds.source_sha256 != expected_sha256:
            raise DatasetError(
                f"{ds.name[len(NPZ_PREFIX) :]} changed since the store was written (sha256 "
                f"{expected_sha256[:12]}... then, {ds.source_sha256[:12]}... now): its shadow "
                "models were trained on other data. Restore the original file, or train a new "
                "store on this one in a new --workdir."
            )
        return ds
    if name == "digits":
        return _raw(name, *_load_digits(), 10, False)
    if name == "breast_cancer":
        return _raw(name, *_load_breast_cancer(), 2, False)
    if name == "fashion_mnist_idx":
        return _raw(name, *_load_idx_dir(data_dir), 10, True)
    if name == "cifar_synth":
        return _load_synthetic(name)
    if name in _TFDS_NAMES:
        tfds_name, mirror_ok = _TFDS_NAMES[name]
        *arrays, num_classes = _load_tfds(tfds_name, data_dir)
        return _raw(name, *arrays, num_classes, mirror_ok)
    raise DatasetError(
        f"Unknown dataset {name!r}. Known datasets: {', '.join(dataset_names())}, or "
        "npz:PATH for your own arrays."
    )


def load_dataset(
    name: str,
    data_dir: str | None = None,
    max_train: int | None = None,
    *,
    expected_sha256: str | None = None,
) -> Dataset:
    """Loads a dataset by registry name, as a run's pool (`standardise(load_raw(...))`).

    Args:
      name: one of `dataset_names()`, or ``npz:PATH`` (`NPZ_FORMAT`).
      data_dir: tfds data_dir (tfds datasets) or folder of IDX files (`fashion_mnist_idx`,
        default `DEFAULT_IDX_DIR`, where Debian's package puts them).
      max_train: keep only the first `max_train` training examples (small runs).
      expected_sha256: see `load_raw`.

    Returns:
      A `Dataset`.

    Raises:
      DatasetError: unknown name, or the data is not available locally.
    """
    if max_train is not None and max_train < 2:
        raise DatasetError(f"max_train={max_train} must be at least 2 (or unset for all).")
    if name in _SYNTHETIC:  # generate only the first max_train (the same examples as all)
        return standardise(_load_synthetic(name, max_train), max_train)
    return standardise(load_raw(name, data_dir, expected_sha256=expected_sha256), max_train)


def _load_synthetic(name: str, max_train: int | None = None) -> Dataset:
    # Imported here: the PyTorch peer loads this file by path, without the package (JAX).
    from lira_jax.data import synthetic

    num_train = synthetic.NUM_TRAIN if max_train is None else min(max_train, synthetic.NUM_TRAIN)
    return _raw(name, *synthetic.cifar_like(num_train), synthetic.NUM_CLASSES, True)

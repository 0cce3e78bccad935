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
`cifar_synth` is generated from a seed (`lira_jax.data.synthetic`): CIFAR-10's shapes and
sizes where no prepared copy exists (benchmarks, the accelerator check, tests).
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import struct

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
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    mirror_ok: bool
    task: str = "all"

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


def dataset_names() -> tuple[str, ...]:
    return _EMBEDDED + tuple(_TFDS_NAMES) + _IDX + _SYNTHETIC


def _standardise(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standardises with the training pool's statistics per channel (images) or feature
    (tabular): over every axis but the last."""
    axes = tuple(range(x_train.ndim - 1))
    mean = x_train.mean(axis=axes, keepdims=True)
    std = x_train.std(axis=axes, keepdims=True) + 1e-6
    return ((x_train - mean) / std).astype(np.float32), ((x_test - mean) / std).astype(np.float32)


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


def load_raw(name: str, data_dir: str | None = None) -> Dataset:
    """Loads a dataset by registry name, unstandardised: images in [0, 1], tabular
    features as published, every training example. Mixtures combine raw datasets and
    standardise once (`standardise`) after mixing.

    Raises:
      DatasetError: unknown name, or the data is not available locally.
    """
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
    raise DatasetError(f"Unknown dataset {name!r}. Known datasets: {', '.join(dataset_names())}.")


def load_dataset(name: str, data_dir: str | None = None, max_train: int | None = None) -> Dataset:
    """Loads a dataset by registry name, as a run's pool (`standardise(load_raw(...))`).

    Args:
      name: one of `dataset_names()`.
      data_dir: tfds data_dir (tfds datasets) or folder of IDX files (`fashion_mnist_idx`,
        default `DEFAULT_IDX_DIR`, where Debian's package puts them).
      max_train: keep only the first `max_train` training examples (small runs).

    Returns:
      A `Dataset`.

    Raises:
      DatasetError: unknown name, or the data is not available locally.
    """
    if max_train is not None and max_train < 2:
        raise DatasetError(f"max_train={max_train} must be at least 2 (or unset for all).")
    if name in _SYNTHETIC:  # generate only the first max_train (the same examples as all)
        return standardise(_load_synthetic(name, max_train), max_train)
    return standardise(load_raw(name, data_dir), max_train)


def _load_synthetic(name: str, max_train: int | None = None) -> Dataset:
    # Imported here: the PyTorch peer loads this file by path, without the package (JAX).
    from lira_jax.data import synthetic

    num_train = synthetic.NUM_TRAIN if max_train is None else min(max_train, synthetic.NUM_TRAIN)
    return _raw(name, *synthetic.cifar_like(num_train), synthetic.NUM_CLASSES, True)

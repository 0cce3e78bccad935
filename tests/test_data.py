"""Tests for lira_jax.data: registry, IDX reader, tfds path, keep masks, augmentations."""

import gzip
import hashlib
import struct

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds

from lira_jax.data import (
    DatasetError,
    Query,
    apply_query,
    dataset_names,
    datasets,
    keep_mask,
    load_dataset,
    query_set,
    random_augment,
)
from lira_jax.data.augment import shift_image

# -- keep mask ---------------------------------------------------------------------------


@pytest.mark.parametrize("m,pkeep", [(2, 0.5), (16, 0.5), (64, 0.5), (10, 0.7), (7, 0.3)])
def test_keep_mask_is_balanced(m, pkeep):
    keep = keep_mask(seed=3, num_models=m, num_examples=500, pkeep=pkeep)
    assert keep.shape == (m, 500) and keep.dtype == bool
    np.testing.assert_array_equal(keep.sum(0), int(pkeep * m))  # every example, exactly


def test_keep_mask_is_reproducible_and_seeded():
    a = keep_mask(0, 16, 300)
    np.testing.assert_array_equal(a, keep_mask(0, 16, 300))
    assert (a != keep_mask(1, 16, 300)).mean() > 0.3
    # Matches the reference construction literally.
    u = np.random.default_rng(0).uniform(size=(16, 300))
    np.testing.assert_array_equal(a, u.argsort(0) < 8)


def test_keep_mask_rows_are_random_subsets():
    keep = keep_mask(5, 32, 4000)
    frac = keep.mean(1)  # each model trains on ~half the examples
    assert np.all(np.abs(frac - 0.5) < 0.05)
    # Models are not correlated: pairwise overlap ~ 1/4 of the examples.
    overlap = (keep[:, None] & keep[None]).mean(-1)[~np.eye(32, dtype=bool)]
    assert np.all(np.abs(overlap - 0.25) < 0.05)


@pytest.mark.parametrize(
    "m,pkeep,match",
    [
        (1, 0.5, "at least 2 models"),
        (16, 0.0, r"in \(0, 1\)"),
        (16, 1.5, r"in \(0, 1\)"),
        (3, 0.2, "need at least one IN"),
    ],
)
def test_keep_mask_bad_inputs(m, pkeep, match):
    with pytest.raises(ValueError, match=match):
        keep_mask(0, m, 10, pkeep)


# -- datasets ----------------------------------------------------------------------------


def test_digits_is_real_and_split_is_fixed():
    ds = load_dataset("digits")
    assert ds.x_train.shape == (1500, 8, 8, 1) and ds.x_test.shape == (297, 8, 8, 1)
    assert ds.num_classes == 10 and not ds.mirror_ok
    assert set(np.unique(ds.y_train)) == set(range(10))
    np.testing.assert_allclose(ds.x_train.mean(), 0, atol=1e-5)  # standardised
    np.testing.assert_allclose(ds.x_train.std(), 1, atol=1e-3)
    again = load_dataset("digits")
    np.testing.assert_array_equal(ds.y_train, again.y_train)
    small = load_dataset("digits", max_train=100)
    np.testing.assert_array_equal(small.y_train, ds.y_train[:100])


def _write_idx(path, array):
    dtype_code = 0x08  # unsigned byte
    header = struct.pack(">HBB", 0, dtype_code, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_idx_reader_on_synthetic_files(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 12, dtype=np.uint8)
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images[:5])
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels[:5])
    ds = load_dataset("fashion_mnist_idx", data_dir=str(tmp_path))
    assert ds.x_train.shape == (12, 28, 28, 1) and ds.x_test.shape == (5, 28, 28, 1)
    np.testing.assert_array_equal(ds.y_train, labels)
    # Standardisation is monotone per pixel value: the pixel order is preserved.
    raw = images.astype(np.float64) / 255
    np.testing.assert_allclose(
        ds.x_train[..., 0], (raw - raw.mean()) / (raw.std() + 1e-6), rtol=1e-4, atol=1e-4
    )


def test_idx_reader_missing_files(tmp_path, monkeypatch):
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte.*dataset-fashion-mnist"):
        load_dataset("fashion_mnist_idx", data_dir=str(tmp_path))
    # Without --data_dir: the default directory is named, with how to fill it.
    monkeypatch.setattr(datasets, "DEFAULT_IDX_DIR", str(tmp_path / "none"))
    with pytest.raises(DatasetError, match=r"default directory .*none\. Install.*apt-get"):
        load_dataset("fashion_mnist_idx")


@pytest.mark.parametrize(
    "name,shape,classes", [("mnist", (28, 28, 1), 10), ("cifar10", (32, 32, 3), 10)]
)
def test_tfds_path_with_mock_data(name, shape, classes, tmp_path):
    with tfds.testing.mock_data(num_examples=24):
        ds = load_dataset(name, data_dir=str(tmp_path))
    assert ds.x_train.shape == (24, *shape) and ds.x_train.dtype == np.float32
    assert ds.num_classes == classes
    assert ds.y_train.min() >= 0 and ds.y_train.max() < classes
    assert ds.mirror_ok == (name == "cifar10")


def test_tfds_unprepared_names_dataset_and_dir(tmp_path):
    with pytest.raises(DatasetError, match=rf"'mnist' is not prepared in data_dir='{tmp_path}'"):
        load_dataset("mnist", data_dir=str(tmp_path))


def test_unknown_dataset():
    with pytest.raises(DatasetError, match="Unknown dataset 'cifar11'.*digits"):
        load_dataset("cifar11")
    assert "digits" in dataset_names() and "cifar10" in dataset_names()


# -- augmentations and queries --------------------------------------------------------------


def test_query_sets():
    assert query_set("identity", True) == (Query(False, 0, 0),)
    assert len(query_set("mirror", True)) == 2 and len(query_set("mirror", False)) == 1
    assert len(query_set("shift1", True)) == 18  # the reference's 18 queries
    assert len(query_set("shift1", False)) == 9
    assert len(query_set("cross1", False)) == 5
    assert len(query_set("cross2", False)) == 13
    for spec in ("mirror", "shift1", "cross1"):
        assert query_set(spec, True)[0] == Query(False, 0, 0)  # identity first
    with pytest.raises(ValueError, match="Unknown query set"):
        query_set("rotate5", True)


def test_shift_matches_numpy_reflect_pad():
    x = np.random.default_rng(0).normal(size=(2, 6, 7, 3)).astype(np.float32)
    for dy, dx in [(1, 0), (0, -1), (2, 1), (-2, -2)]:
        padded = np.pad(x, [(0, 0), (2, 2), (2, 2), (0, 0)], mode="reflect")
        want = padded[:, 2 - dy : 2 - dy + 6, 2 - dx : 2 - dx + 7]
        np.testing.assert_array_equal(shift_image(jnp.asarray(x), dy, dx, 2), want)
    # A shift by +1 moves content down/right: the new pixel (1, 1) is the old (0, 0).
    out = np.asarray(apply_query(jnp.asarray(x), Query(False, 1, 1)))
    np.testing.assert_array_equal(out[:, 1:, 1:], x[:, :-1, :-1])
    np.testing.assert_array_equal(apply_query(jnp.asarray(x), Query(True, 0, 0)), x[:, :, ::-1])


def test_random_augment_is_keyed_and_label_free():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(64, 8, 8, 1)), jnp.float32)
    key = jax.random.PRNGKey(0)
    a = random_augment(key, x, 1, False)
    np.testing.assert_array_equal(a, random_augment(key, x, 1, False))
    assert not np.array_equal(a, random_augment(jax.random.PRNGKey(1), x, 1, False))
    np.testing.assert_array_equal(random_augment(key, x, 0, False), x)
    # Each output is one of the 9 shifts of its input.
    for i in range(8):
        shifts = [shift_image(x[i], dy, dx, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
        assert any(np.array_equal(a[i], s) for s in shifts)


def test_keep_mask_is_pinned_by_value():
    """The membership of seed 0 (64 models, 1,500 examples), by value: the same on every
    machine and library version, or every published run's IN/OUT labels would change."""
    digest = hashlib.sha256(np.packbits(keep_mask(0, 64, 1500)).tobytes()).hexdigest()
    assert digest == "7b075695fc279f13e3a0782e26f4378c2a3ed84317f9873a918181916b5852c9"

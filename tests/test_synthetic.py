"""`cifar_synth` (lira_jax.data.synthetic): CIFAR-10's shapes, its documented contract, and
something to learn."""

import numpy as np
import pytest

from lira_jax.data import DatasetError, dataset_names, datasets, load_dataset, synthetic


def _example_from_the_docstring(seed: int, split: int, i: int) -> tuple[np.ndarray, int]:
    """Example i of a split, re-implemented from the module docstring alone."""
    rng = np.random.default_rng([seed, 0])
    fine = rng.standard_normal((10, 4, 4, 4, 3)).repeat(8, axis=2).repeat(8, axis=3)
    for axis in (2, 3):
        fine = sum(np.roll(fine, d, axis=axis) for d in range(-4, 5)) / 9.0
    fine /= fine.std(axis=(2, 3, 4), keepdims=True)
    rng = np.random.default_rng([seed, 1 + split, i // 1000])
    cls = rng.integers(0, 10, 1000)
    proto = rng.integers(0, 4, 1000)
    shift = rng.integers(-4, 5, (1000, 2))
    contrast = rng.uniform(0.5, 1.5, 1000)
    noise = rng.standard_normal((1000, 32, 32, 3))
    flip = rng.uniform(size=1000) < 0.1
    other = rng.integers(0, 10, 1000)
    j = i % 1000
    pattern = np.roll(fine[cls[j], proto[j]], tuple(shift[j]), axis=(0, 1))
    image = np.clip(0.5 + 0.08 * contrast[j] * pattern + 0.2 * noise[j], 0, 1)
    return image.astype(np.float32), int(other[j] if flip[j] else cls[j])


def test_examples_follow_the_documented_contract():
    x, y = synthetic.split(1300, 0, seed=3)
    xt, yt = synthetic.split(5, 1, seed=3)
    for split, i, (images, labels) in [(0, 7, (x, y)), (0, 1234, (x, y)), (1, 4, (xt, yt))]:
        image, label = _example_from_the_docstring(3, split, i)
        np.testing.assert_allclose(images[i], image, atol=1e-6)
        assert labels[i] == label


def test_shapes_ranges_and_prefix_stability():
    x, y = synthetic.split(2500, 0)
    assert x.shape == (2500, 32, 32, 3) and x.dtype == np.float32 and y.dtype == np.int32
    assert 0 <= x.min() and x.max() <= 1 and set(np.unique(y)) == set(range(10))
    np.testing.assert_array_equal(synthetic.split(1500, 0)[0], x[:1500])  # any size asked
    assert not np.array_equal(synthetic.split(10, 1)[0], x[:10])  # test split: its own draws
    assert not np.array_equal(synthetic.split(10, 0, seed=1)[0], x[:10])
    with pytest.raises(ValueError, match="num_train=50001"):
        synthetic.cifar_like(50_001)


def test_registry_pool_is_the_prefix_of_the_whole_set():
    assert "cifar_synth" in dataset_names()
    ds = load_dataset("cifar_synth", max_train=300)
    assert ds.image_shape == (32, 32, 3) and ds.num_classes == 10 and ds.mirror_ok
    assert ds.x_test.shape == (10_000, 32, 32, 3)
    raw = datasets.load_raw("cifar_synth")  # all 50,000 drawn
    assert raw.x_train.shape == (50_000, 32, 32, 3)
    whole = datasets.standardise(raw, 300)
    np.testing.assert_array_equal(ds.x_train, whole.x_train)
    np.testing.assert_array_equal(ds.y_train, whole.y_train)
    np.testing.assert_array_equal(ds.x_test, whole.x_test)
    with pytest.raises(DatasetError, match="max_train=1"):
        load_dataset("cifar_synth", max_train=1)


def test_something_to_learn_and_to_memorise():
    """Nearest class mean (no training at all) beats chance by far; the noisy labels (a
    tenth, a tenth of which land on the true class) cap what any model can reach at ~91%."""
    x, y = synthetic.split(4000, 0)
    xt, yt = synthetic.split(2000, 1)
    means = np.stack([x[y == c].mean(0) for c in range(10)]).reshape(10, -1)
    flat = xt.reshape(len(xt), -1)
    pred = ((flat[:, None, :] - means[None]) ** 2).sum(-1).argmin(1)
    acc = (pred == yt).mean()
    assert 0.35 < acc < 0.92, acc

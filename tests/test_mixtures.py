"""Mixtures: image conversion, class balance, group selection, AugMix-style corruption."""

import numpy as np
import pytest

from lira_jax.data import mixtures as mx


def test_gray_is_the_luma_formula_and_resize_keeps_constants():
    rng = np.random.default_rng(0)
    rgb = rng.random((3, 5, 4, 3), dtype=np.float32)
    gray = mx.to_gray(rgb)
    want = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    np.testing.assert_allclose(gray[..., 0], want, rtol=1e-6)
    # RGB 32x32 -> the base's 28x28 gray; a constant image stays that constant.
    const = np.full((2, 32, 32, 3), 0.25, np.float32)
    out = mx.convert_images(const, (28, 28, 1))
    assert out.shape == (2, 28, 28, 1)
    np.testing.assert_allclose(out, 0.299 * 0.25 + 0.587 * 0.25 + 0.114 * 0.25, rtol=1e-5)
    # Upsampling a linear ramp stays a (monotone, in-range) ramp; gray -> RGB repeats.
    ramp = np.tile(np.linspace(0, 1, 8, dtype=np.float32), (8, 1))[None, :, :, None]
    up = mx.convert_images(ramp, (28, 28, 3))
    assert up.shape == (1, 28, 28, 3) and 0 <= up.min() and up.max() <= 1
    assert np.all(np.diff(up[0, 14, :, 0]) >= -1e-6)
    np.testing.assert_array_equal(up[..., 0], up[..., 2])
    with pytest.raises(ValueError, match="channels"):
        mx.convert_images(rng.random((1, 4, 4, 2)), (4, 4, 1))


def test_balanced_indices_and_mix_keep_labels_consistent():
    labels = np.repeat(np.arange(10), 30)[np.random.default_rng(1).permutation(300)]
    idx = mx.balanced_indices(labels, 50, 10, seed=3)
    assert np.bincount(labels[idx], minlength=10).tolist() == [5] * 10
    assert len(np.unique(idx)) == 50
    np.testing.assert_array_equal(idx, mx.balanced_indices(labels, 50, 10, seed=3))
    with pytest.raises(ValueError, match="multiple of the 10 classes"):
        mx.balanced_indices(labels, 55, 10, seed=0)
    with pytest.raises(ValueError, match="fewer than"):
        mx.balanced_indices(labels, 400, 10, seed=0)

    base_x, base_y = np.zeros((7, 4, 4, 1), np.float32), np.arange(7) % 10
    ood_x = np.random.default_rng(2).random((300, 4, 4, 1), dtype=np.float32)
    m = mx.mix(base_x, base_y, ood_x, labels, idx)
    assert m.x.shape == (57, 4, 4, 1) and m.groups.tolist() == [0] * 7 + [1] * 50
    np.testing.assert_array_equal(m.y[7:], labels[idx])  # class k of the OOD source -> k
    np.testing.assert_array_equal(m.x[7:], ood_x[idx])
    np.testing.assert_array_equal(m.source_index, np.r_[np.arange(7), idx])
    with pytest.raises(ValueError, match="convert them"):
        mx.mix(base_x, base_y, np.zeros((3, 5, 5, 1)), np.zeros(3, int), [0])


def test_subpopulation_is_the_planted_smallest_cluster():
    rng = np.random.default_rng(0)
    sizes = [120, 90, 60, 40, 17]
    centres = rng.normal(scale=20.0, size=(5, 32))
    features = np.concatenate(
        [c + rng.normal(size=(n, 32)) for c, n in zip(centres, sizes, strict=True)]
    )
    order = rng.permutation(len(features))
    chosen = mx.select_subpopulation(features[order], pca_dims=10, num_clusters=5, seed=0)
    planted = np.flatnonzero(order >= sum(sizes[:4]))  # where the 17 landed
    np.testing.assert_array_equal(chosen, planted)


def test_singletons_exceed_the_threshold():
    mem = np.array([0.0, 0.5, 0.41, 0.4, 0.9])
    np.testing.assert_array_equal(mx.select_singletons(mem, 0.4), [1, 2, 4])
    with pytest.raises(ValueError, match="lower the threshold"):
        mx.select_singletons(mem, 0.95)


def test_augmix_is_seeded_chunk_independent_and_in_range():
    rng = np.random.default_rng(0)
    x = rng.random((20, 12, 12, 1), dtype=np.float32)
    a = mx.augmix(x, seed=5, severity=3)
    assert a.shape == x.shape and a.dtype == np.float32
    assert 0.0 <= a.min() and a.max() <= 1.0
    np.testing.assert_array_equal(a, mx.augmix(x, seed=5, severity=3))
    np.testing.assert_array_equal(a[:3], mx.augmix(x[:3], seed=5, severity=3))  # per image
    assert not np.allclose(a, mx.augmix(x, seed=6, severity=3))
    assert np.abs(a - x).mean() > 0.01  # it changes the images
    with pytest.raises(ValueError, match="severity"):
        mx.augmix(x, seed=0, severity=0)


def test_equalize_flattens_the_histogram():
    levels = np.cumsum(1 + np.arange(64) // 16).astype(np.float32)  # distinct, skewed 8-bit
    img = np.random.default_rng(0).permutation(levels / 255).reshape(8, 8, 1)
    out = np.asarray(mx._equalize(img, 0.0))
    # Each value becomes its empirical CDF: the k-th smallest -> k / 64, evenly spread.
    np.testing.assert_allclose(np.sort(out.ravel()), np.arange(1, 65) / 64, rtol=1e-6)
    np.testing.assert_array_equal(np.argsort(out.ravel()), np.argsort(img.ravel()))

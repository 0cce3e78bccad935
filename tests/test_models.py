"""Tests for lira_jax.models: the registry and the two convolution lowerings."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lira_jax.models import Conv2D, arch_names, get_model


@pytest.mark.parametrize(
    "arch,shape",
    [(a, (8, 8, 1)) for a in arch_names()] + [("cnn16", (32, 32, 3)), ("mlp", (28, 28, 1))],
)
def test_every_arch_maps_images_to_logits(arch, shape):
    model = get_model(arch, num_classes=7, conv_impl="patches")
    x = jnp.ones((2, *shape))
    params = model.init(jax.random.PRNGKey(0), x)
    out = model.apply(params, x)
    assert out.shape == (2, 7) and np.all(np.isfinite(out))


def test_unknown_arch_lists_the_names():
    with pytest.raises(ValueError, match="Unknown arch 'vgg'.*cnn32"):
        get_model("vgg", 10)
    with pytest.raises(ValueError, match="Unknown conv_impl"):
        get_model("cnn32", 10, conv_impl="winograd")


@pytest.mark.parametrize("k", [1, 3, 5])
def test_patches_conv_equals_lax_conv(k):
    x = jax.random.normal(jax.random.PRNGKey(1), (3, 9, 7, 4))
    patches = Conv2D(6, kernel_size=k, impl="patches")
    lax = Conv2D(6, kernel_size=k, impl="lax")
    params = patches.init(jax.random.PRNGKey(2), x)
    np.testing.assert_allclose(patches.apply(params, x), lax.apply(params, x), atol=1e-5)
    # Against a direct computation of a 'SAME' cross-correlation.
    w = np.asarray(params["params"]["kernel"])
    b = np.asarray(params["params"]["bias"])
    lo = (k - 1) // 2
    xp = np.pad(np.asarray(x), [(0, 0), (lo, k - 1 - lo), (lo, k - 1 - lo), (0, 0)])
    want = np.zeros((3, 9, 7, 6)) + b
    for i in range(k):
        for j in range(k):
            want += np.einsum("bhwc,cf->bhwf", xp[:, i : i + 9, j : j + 7], w[i, j])
    np.testing.assert_allclose(patches.apply(params, x), want, atol=1e-4)


def test_whole_cnn_same_under_both_lowerings():
    x = jax.random.normal(jax.random.PRNGKey(3), (4, 8, 8, 1))
    a, b = get_model("cnn32", 10, "patches"), get_model("cnn32", 10, "lax")
    params = a.init(jax.random.PRNGKey(0), x)
    np.testing.assert_allclose(a.apply(params, x), b.apply(params, x), atol=1e-4)

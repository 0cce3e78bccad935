"""Layers shared by the model zoo.

Design notes: under `jax.vmap` over weights, XLA turns a convolution into a
grouped convolution, which the CPU backend runs several times slower per model
than one model alone. `Conv2D` therefore has two lowerings with the same
parameters and the same result: "lax" (a plain convolution, best on GPUs/TPUs)
and "patches" (im2col from shifted slices followed by a
matmul, which vmaps into a batched matmul: fast on CPUs). "auto" picks by the
default backend.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

CONV_IMPLS = ("auto", "patches", "lax")


def resolve_conv_impl(impl: str) -> str:
    if impl not in CONV_IMPLS:
        raise ValueError(f"Unknown conv_impl {impl!r}; choose one of {CONV_IMPLS}.")
    if impl == "auto":
        return "patches" if jax.default_backend() == "cpu" else "lax"
    return impl


def _patches(x: jnp.ndarray, k: int) -> jnp.ndarray:
    """im2col for a 'SAME' k x k window: [B, H, W, C] -> [B, H, W, k*k*C], ordered (kh, kw, c).

    Built from k*k shifted slices of the zero-padded input: pure data movement.
    (`lax.conv_general_dilated_patches` computes the same thing as a convolution with
    a one-hot filter, which on CPU costs several times the convolution itself.)
    """
    lo = (k - 1) // 2
    h, w = x.shape[-3], x.shape[-2]
    xp = jnp.pad(x, [(0, 0)] * (x.ndim - 3) + [(lo, k - 1 - lo), (lo, k - 1 - lo), (0, 0)])
    views = [xp[..., i : i + h, j : j + w, :] for i in range(k) for j in range(k)]
    return jnp.concatenate(views, axis=-1)


class Conv2D(nn.Module):
    """3x3 (or k x k) 'SAME' convolution, stride 1, kernel [k, k, C_in, C_out]."""

    features: int
    kernel_size: int = 3
    use_bias: bool = True
    impl: str = "auto"

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        k, c = self.kernel_size, x.shape[-1]
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (k, k, c, self.features))
        kernel = kernel.astype(x.dtype)
        if resolve_conv_impl(self.impl) == "patches":
            y = jnp.einsum(
                "bhwp,pf->bhwf", _patches(x, k), kernel.reshape(k * k * c, self.features)
            )
        else:
            y = jax.lax.conv_general_dilated(
                x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
            )
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(x.dtype)
        return y


def max_pool_2x2(x: jnp.ndarray) -> jnp.ndarray:
    """2x2 max pooling; a no-op on a 1x1 map (tiny inputs such as 8x8 digits)."""
    if x.shape[-3] < 2 or x.shape[-2] < 2:
        return x
    return nn.max_pool(x, (2, 2), strides=(2, 2))

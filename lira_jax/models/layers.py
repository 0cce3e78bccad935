"""Layers shared by the model zoo.

Design notes: `Conv2D` has two lowerings with the same parameters and the same result
(to float rounding): "lax" (`lax.conv_general_dilated`) and "patches" (im2col from k*k
shifted slices, then one matmul; on a map with fewer positions than the window, such as
2x2 under 3x3, one matmul with the unrolled kernel instead, skipping the padding zeros).
"auto" picks per backend, by measurement (`experiments/bench/throughput.py`):
- CPU: "patches". XLA's CPU convolutions are slow in the backward pass, above all inside
  compiled loops such as the engine's epoch (the kernel and input gradients of a 3x3
  convolution on small maps ran at ~2 GFLOP/s on 2 cores there, 15-25 in a single jitted
  step, the patches matmuls at 40-100), and under `jax.vmap` over weights a convolution
  becomes a grouped convolution, slower still. Training digits CNNs in the engine:
  "patches" ran at ~20x the model-epochs/s of "lax".
- GPU/TPU: "lax" (cuDNN / the TPU convolution units; not measured in this repository's
  CI, which has no accelerator: run the benchmark's lowering table on the device to
  check).
Pooling is written as reshape + max (see `max_pool_2x2`) for every backend.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

CONV_IMPLS = ("auto", "patches", "lax")


def resolve_conv_impl(impl: str) -> str:
    """ "patches" or "lax" for `impl` ("auto": by the default backend, see the module notes)."""
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


def _unrolled_kernel(kernel: jnp.ndarray, h: int, w: int) -> jnp.ndarray:
    """The 'SAME' convolution on an h x w map as one matrix: [h*w*C_in, h*w*C_out].

    Entry ((p, c), (q, f)) is the kernel tap that connects input position p to output
    position q (zero where p is outside q's window). Built with a constant one-hot
    [h*w, h*w, k*k] selection, so gradients flow back to the kernel.
    """
    k, c, f = kernel.shape[0], kernel.shape[2], kernel.shape[3]
    lo = (k - 1) // 2
    select = np.zeros((h * w, h * w, k * k), np.float32)
    for qy in range(h):
        for qx in range(w):
            for i in range(k):
                for j in range(k):
                    py, px = qy + i - lo, qx + j - lo
                    if 0 <= py < h and 0 <= px < w:
                        select[py * w + px, qy * w + qx, i * k + j] = 1.0
    select = jnp.asarray(select, kernel.dtype)
    taps = jnp.einsum("pqt,tcf->pcqf", select, kernel.reshape(k * k, c, f))
    return taps.reshape(h * w * c, h * w * f)


class Conv2D(nn.Module):
    """k x k convolution, kernel [k, k, C_in, C_out], padded by (k-1)//2 before and k-1-(k-1)//2
    after (stride 1: 'SAME'). With `stride` s > 1 the output is the stride-1 output at every
    s-th row and column, starting at 0 (PyTorch's `Conv2d(padding=(k-1)//2, stride=s)` for
    odd k): [B, H, W, C] -> [B, ceil(H/s), ceil(W/s), F]."""

    features: int
    kernel_size: int = 3
    use_bias: bool = True
    impl: str = "auto"
    stride: int = 1

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        k, c, s = self.kernel_size, x.shape[-1], self.stride
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (k, k, c, self.features))
        kernel = kernel.astype(x.dtype)
        h, w = x.shape[-3], x.shape[-2]
        if resolve_conv_impl(self.impl) == "patches" and h * w < k * k:
            # A map with fewer positions than the window has (2x2 under 3x3): every output
            # sees the whole map, and im2col would be mostly padding zeros. One matmul with
            # the unrolled kernel does only the real multiply-adds (4 of 9 taps on 2x2).
            flat = x.reshape(x.shape[:-3] + (h * w * c,))
            y = (flat @ _unrolled_kernel(kernel, h, w)).reshape(x.shape[:-1] + (self.features,))
            y = y[..., ::s, ::s, :]
        elif resolve_conv_impl(self.impl) == "patches":
            # Strided: only the kept positions' windows enter the matmul.
            patches = _patches(x, k)[..., ::s, ::s, :]
            y = jnp.einsum("bhwp,pf->bhwf", patches, kernel.reshape(k * k * c, self.features))
        else:
            lo = (k - 1) // 2
            y = jax.lax.conv_general_dilated(
                x,
                kernel,
                (s, s),
                [(lo, k - 1 - lo), (lo, k - 1 - lo)],
                dimension_numbers=("NHWC", "HWIO", "NHWC"),
            )
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(x.dtype)
        return y


def max_pool_2x2(x: jnp.ndarray) -> jnp.ndarray:
    """2x2 max pooling, stride 2, 'VALID' (an odd last row/column is dropped, as in
    `nn.max_pool`); a no-op on a map smaller than 2x2 (tiny inputs such as 8x8 digits).

    Written as crop + reshape + max rather than `nn.max_pool`: the forward is identical, and
    the backward is an elementwise mask instead of `select_and_scatter`, which under `vmap`
    XLA lowers to a scatter (the slowest op of a CPU training step, and 2-3x the compile
    time). Where a window holds several equal maxima the gradient is split between them
    instead of going to the first; after a ReLU such ties are zeros, whose gradient is
    zero either way.

    Args:
      x: [..., H, W, C].

    Returns:
      [..., H // 2, W // 2, C].
    """
    h, w = x.shape[-3], x.shape[-2]
    if h < 2 or w < 2:
        return x
    x = x[..., : h // 2 * 2, : w // 2 * 2, :]
    x = x.reshape(x.shape[:-3] + (h // 2, 2, w // 2, 2, x.shape[-1]))
    return x.max(axis=(-4, -2))

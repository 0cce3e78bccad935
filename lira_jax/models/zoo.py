"""The models, chosen by name: small CNNs, a small ResNet, an MLP, logistic regression.

`mlp` and `logreg` flatten each example, so they take images [B, H, W, C] and tabular
feature vectors [B, F] alike; the CNNs and the ResNet need images.

All are stateless (no batch statistics), so a stack of M models is just a
pytree with a leading models axis and `jax.vmap` needs nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

from lira_jax.models.layers import Conv2D, max_pool_2x2, resolve_conv_impl


class CNN(nn.Module):
    """The CNN of the LiRA reference: `depth` x (conv 3x3 -> ReLU -> max-pool 2x2), then dense.

    Widths double at each stage from `width` (cnn32: 32, 64, 128).
    """

    num_classes: int
    width: int = 32
    depth: int = 3
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        for i in range(self.depth):
            x = Conv2D(self.width * 2**i, impl=self.conv_impl)(x)
            x = max_pool_2x2(nn.relu(x))
        x = x.reshape(x.shape[0], -1)
        return nn.Dense(self.num_classes)(x)


class _ConvBlock(nn.Module):
    features: int
    pool: bool
    conv_impl: str

    @nn.compact
    def __call__(self, x):
        x = Conv2D(self.features, use_bias=False, impl=self.conv_impl)(x)
        x = nn.GroupNorm(num_groups=min(8, self.features))(x)
        x = nn.relu(x)
        return max_pool_2x2(x) if self.pool else x


class ResNet9(nn.Module):
    """ResNet-9 in the style of the fast CIFAR-10 trainers (prep, 3 stages, 2 residual blocks).

    GroupNorm replaces BatchNorm so that models stay stateless under vmap.
    """

    num_classes: int
    width: int = 64
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        w, impl = self.width, self.conv_impl
        x = _ConvBlock(w, False, impl)(x)
        x = _ConvBlock(2 * w, True, impl)(x)
        x = x + _ConvBlock(2 * w, False, impl)(_ConvBlock(2 * w, False, impl)(x))
        x = _ConvBlock(4 * w, True, impl)(x)
        x = _ConvBlock(8 * w, True, impl)(x)
        x = x + _ConvBlock(8 * w, False, impl)(_ConvBlock(8 * w, False, impl)(x))
        x = jnp.max(x, axis=(1, 2))
        return nn.Dense(self.num_classes)(x) * 0.125


class MLP(nn.Module):
    """ReLU MLP on the flattened example (images or feature vectors)."""

    num_classes: int
    hidden: Sequence[int] = (256, 256)

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        x = x.reshape(x.shape[0], -1)
        for h in self.hidden:
            x = nn.relu(nn.Dense(h)(x))
        return nn.Dense(self.num_classes)(x)


class LogReg(nn.Module):
    """Multinomial logistic regression: one dense layer on the flattened example (for C = 2
    the logit difference is the usual binary logistic regression's score)."""

    num_classes: int

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        return nn.Dense(self.num_classes)(x.reshape(x.shape[0], -1))


_ARCHS = {
    "cnn16": lambda c, impl: CNN(c, width=16, conv_impl=impl),
    "cnn32": lambda c, impl: CNN(c, width=32, conv_impl=impl),
    "cnn64": lambda c, impl: CNN(c, width=64, conv_impl=impl),
    "resnet9": lambda c, impl: ResNet9(c, width=64, conv_impl=impl),
    "resnet9_small": lambda c, impl: ResNet9(c, width=16, conv_impl=impl),
    "mlp": lambda c, impl: MLP(c),
    "logreg": lambda c, impl: LogReg(c),
}
# Architectures that accept flat feature vectors (tabular data) as well as images.
FLAT_INPUT_ARCHS = ("mlp", "logreg")


def arch_names() -> tuple[str, ...]:
    return tuple(_ARCHS)


def get_model(
    arch: str, num_classes: int, conv_impl: str = "auto", *, tabular: bool = False
) -> nn.Module:
    """Builds a model by name; see `arch_names()`.

    Args:
      arch: the architecture's name.
      num_classes: number of logits.
      conv_impl: convolution lowering (see `lira_jax.models.layers`).
      tabular: the inputs are flat feature vectors; only `FLAT_INPUT_ARCHS` take them.

    Raises:
      ValueError: an unknown name, or an image-only architecture for tabular data.
    """
    if arch not in _ARCHS:
        raise ValueError(f"Unknown arch {arch!r}. Known architectures: {', '.join(_ARCHS)}.")
    if tabular and arch not in FLAT_INPUT_ARCHS:
        raise ValueError(
            f"arch={arch!r} needs images; tabular data (flat feature vectors) takes "
            f"{' or '.join(FLAT_INPUT_ARCHS)}."
        )
    return _ARCHS[arch](num_classes, resolve_conv_impl(conv_impl))

"""The models, chosen by name: small CNNs, ResNet-9, wide ResNets, an MLP, logistic
regression; or a user's own flax module by import path.

`mlp` and `logreg` flatten each example, so they take images [B, H, W, C] and tabular
feature vectors [B, F] alike; the CNNs and the ResNets need images. `wrn16_4` and
`wrn28_2` are the wide ResNets of the LiRA and RMIA papers' CIFAR-10 shadow models, with
GroupNorm in place of BatchNorm.

The contract every model keeps (`MODEL_CONTRACT`, checked by `check_model` before any
training): stateless (no batch statistics, no mutable collections, no RNG at apply time),
so a stack of M models is just a pytree with a leading models axis and `jax.vmap` needs
nothing else; `__call__(x, penultimate=False)` returns logits [B, num_classes]; with
`penultimate=True` it returns the input of the final dense layer instead (the features
subpopulation selection clusters), computed by the same layers and parameters.

A user's module enters as ``arch="package.module:Name"`` (`is_import_path`): ``Name`` is a
`flax.linen.Module` subclass, built as ``Name(num_classes=C)``, or a factory called as
``Name(C)`` that returns a module instance. The module must be importable by the process
that trains or attacks (installed, or on ``PYTHONPATH`` / in the working directory).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

import flax.linen as nn
import jax
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
    def __call__(self, x: jnp.ndarray, penultimate: bool = False) -> jnp.ndarray:
        for i in range(self.depth):
            x = Conv2D(self.width * 2**i, impl=self.conv_impl)(x)
            x = max_pool_2x2(nn.relu(x))
        x = x.reshape(x.shape[0], -1)
        return x if penultimate else nn.Dense(self.num_classes)(x)


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
    def __call__(self, x: jnp.ndarray, penultimate: bool = False) -> jnp.ndarray:
        w, impl = self.width, self.conv_impl
        x = _ConvBlock(w, False, impl)(x)
        x = _ConvBlock(2 * w, True, impl)(x)
        x = x + _ConvBlock(2 * w, False, impl)(_ConvBlock(2 * w, False, impl)(x))
        x = _ConvBlock(4 * w, True, impl)(x)
        x = _ConvBlock(8 * w, True, impl)(x)
        x = x + _ConvBlock(8 * w, False, impl)(_ConvBlock(8 * w, False, impl)(x))
        x = jnp.max(x, axis=(1, 2))
        return x if penultimate else nn.Dense(self.num_classes)(x) * 0.125


class MLP(nn.Module):
    """ReLU MLP on the flattened example (images or feature vectors)."""

    num_classes: int
    hidden: Sequence[int] = (256, 256)

    @nn.compact
    def __call__(self, x: jnp.ndarray, penultimate: bool = False) -> jnp.ndarray:
        x = x.reshape(x.shape[0], -1)
        for h in self.hidden:
            x = nn.relu(nn.Dense(h)(x))
        return x if penultimate else nn.Dense(self.num_classes)(x)


class LogReg(nn.Module):
    """Multinomial logistic regression: one dense layer on the flattened example (for C = 2
    the logit difference is the usual binary logistic regression's score)."""

    num_classes: int

    @nn.compact
    def __call__(self, x: jnp.ndarray, penultimate: bool = False) -> jnp.ndarray:
        x = x.reshape(x.shape[0], -1)
        return x if penultimate else nn.Dense(self.num_classes)(x)


def _group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=min(16, channels))


class _WideBlock(nn.Module):
    """Pre-activation basic block: norm-ReLU-conv3x3(stride)-norm-ReLU-conv3x3, plus the
    input (through a 1x1 strided convolution of the activated input when the shape changes)."""

    features: int
    stride: int
    conv_impl: str

    @nn.compact
    def __call__(self, x):
        impl = self.conv_impl
        h = nn.relu(_group_norm(x.shape[-1])(x))
        shortcut = x
        if self.stride != 1 or x.shape[-1] != self.features:
            shortcut = Conv2D(
                self.features, kernel_size=1, use_bias=False, impl=impl, stride=self.stride
            )(h)
        h = Conv2D(self.features, use_bias=False, impl=impl, stride=self.stride)(h)
        h = nn.relu(_group_norm(self.features)(h))
        h = Conv2D(self.features, use_bias=False, impl=impl)(h)
        return shortcut + h


class WideResNet(nn.Module):
    """WRN-depth-width (Zagoruyko & Komodakis 2016): a 3x3 convolution to 16 channels, three
    stages of (depth - 4) / 6 pre-activation blocks with 16·width, 32·width and 64·width
    channels (strides 1, 2, 2), norm-ReLU, global average pooling, dense. GroupNorm (up to 16
    groups) replaces BatchNorm so that the model is stateless; no dropout.
    """

    num_classes: int
    depth: int = 16
    width: int = 4
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jnp.ndarray, penultimate: bool = False) -> jnp.ndarray:
        if (self.depth - 4) % 6 or self.depth < 10:
            raise ValueError(f"WideResNet depth={self.depth} must be 6n + 4 with n >= 1.")
        blocks = (self.depth - 4) // 6
        x = Conv2D(16, use_bias=False, impl=self.conv_impl)(x)
        for stage, stride in enumerate((1, 2, 2)):
            for b in range(blocks):
                features = 16 * self.width * 2**stage
                x = _WideBlock(features, stride if b == 0 else 1, self.conv_impl)(x)
        x = nn.relu(_group_norm(x.shape[-1])(x))
        x = jnp.mean(x, axis=(1, 2))
        return x if penultimate else nn.Dense(self.num_classes)(x)


_ARCHS = {
    "cnn16": lambda c, impl: CNN(c, width=16, conv_impl=impl),
    "cnn32": lambda c, impl: CNN(c, width=32, conv_impl=impl),
    "cnn64": lambda c, impl: CNN(c, width=64, conv_impl=impl),
    "resnet9": lambda c, impl: ResNet9(c, width=64, conv_impl=impl),
    "resnet9_small": lambda c, impl: ResNet9(c, width=16, conv_impl=impl),
    "wrn16_4": lambda c, impl: WideResNet(c, depth=16, width=4, conv_impl=impl),
    "wrn28_2": lambda c, impl: WideResNet(c, depth=28, width=2, conv_impl=impl),
    "mlp": lambda c, impl: MLP(c),
    "logreg": lambda c, impl: LogReg(c),
}
# Architectures that accept flat feature vectors (tabular data) as well as images.
FLAT_INPUT_ARCHS = ("mlp", "logreg")

MODEL_CONTRACT = (
    "a flax.linen.Module that is stateless (parameters only: no batch statistics or other "
    "mutable collections, no dropout or other RNG when applied) and whose "
    "__call__(x, penultimate=False) returns logits [batch, num_classes] (with "
    "penultimate=True: the features the final dense layer takes, [batch, F])"
)


def arch_names() -> tuple[str, ...]:
    """The zoo's names (a user's module is ``package.module:Name``, see `is_import_path`)."""
    return tuple(_ARCHS)


def is_import_path(arch: str) -> bool:
    """Whether `arch` names a user's module, ``package.module:Name`` (not a zoo name)."""
    if not isinstance(arch, str) or arch.count(":") != 1:
        return False
    module, name = arch.split(":")
    return all(p.isidentifier() for p in module.split(".")) and all(
        p.isidentifier() for p in name.split(".")
    )


def is_arch_name(arch: str) -> bool:
    """Whether `arch` is a zoo name or a well-formed import path (nothing is imported)."""
    return arch in _ARCHS or is_import_path(arch)


def _import_model(arch: str, num_classes: int) -> nn.Module:
    """The user's module named by ``package.module:Name`` (see the module docstring)."""
    module_name, attr = arch.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(
            f"arch={arch!r}: cannot import module {module_name!r} ({e}). Install it, or run "
            "from the directory that holds it / add that directory to PYTHONPATH."
        ) from e
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            found = sorted(
                n
                for n, v in vars(module).items()
                if isinstance(v, type) and issubclass(v, nn.Module) and v.__module__ == module_name
            )
            raise ValueError(
                f"arch={arch!r}: module {module_name!r} has no attribute {attr!r} (flax modules "
                f"defined there: {found or 'none'})."
            )
        obj = getattr(obj, part)
    if isinstance(obj, type) and issubclass(obj, nn.Module):
        try:
            model = obj(num_classes=num_classes)
        except TypeError as e:
            raise ValueError(
                f"arch={arch!r}: {attr}(num_classes={num_classes}) failed ({e}); the class must "
                "take num_classes (a dataclass field), or give a factory (num_classes) -> module."
            ) from e
    elif callable(obj):
        model = obj(num_classes)
    else:
        raise ValueError(
            f"arch={arch!r}: {attr} is a {type(obj).__name__}, not a flax module class or a "
            "factory (num_classes) -> module."
        )
    if not isinstance(model, nn.Module):
        raise ValueError(
            f"arch={arch!r}: {attr}({num_classes}) returned a {type(model).__name__}; it must "
            f"return {MODEL_CONTRACT}."
        )
    return model


def get_model(
    arch: str, num_classes: int, conv_impl: str = "auto", *, tabular: bool = False
) -> nn.Module:
    """Builds a model by name (`arch_names()`) or import path (`is_import_path`).

    Args:
      arch: the architecture's name, or ``package.module:Name``.
      num_classes: number of logits.
      conv_impl: convolution lowering (see `lira_jax.models.layers`).
      tabular: the inputs are flat feature vectors; only `FLAT_INPUT_ARCHS` take them.

    Raises:
      ValueError: an unknown name, an image-only architecture for tabular data, or an
        import path that cannot be imported or does not name a module class or factory.
    """
    if is_import_path(arch):
        return _import_model(arch, num_classes)
    if arch not in _ARCHS:
        raise ValueError(
            f"Unknown arch {arch!r}. Known architectures: {', '.join(_ARCHS)}, or "
            "package.module:Name for your own flax module."
        )
    if tabular and arch not in FLAT_INPUT_ARCHS:
        raise ValueError(
            f"arch={arch!r} needs images; tabular data (flat feature vectors) takes "
            f"{' or '.join(FLAT_INPUT_ARCHS)}."
        )
    return _ARCHS[arch](num_classes, resolve_conv_impl(conv_impl))


def check_model(
    model: nn.Module, example_shape: Sequence[int], num_classes: int, arch: str = ""
) -> None:
    """Checks `MODEL_CONTRACT` on abstract inputs (`jax.eval_shape`: no compute, no memory).

    Args:
      model: the module.
      example_shape: one example's shape ([H, W, C] or [F]).
      num_classes: the logits expected.
      arch: the name to put in messages.

    Raises:
      ValueError: naming what breaks the contract (mutable collections such as batch
        statistics, an RNG needed at apply time, a missing `penultimate` argument, logits of
        the wrong shape or dtype), before any training.
    """
    name = f"arch={arch!r}" if arch else type(model).__name__
    x = jax.ShapeDtypeStruct((2, *example_shape), jnp.float32)
    try:
        variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), x)
    except Exception as e:  # noqa: BLE001 - a user's module can fail in any way
        raise ValueError(
            f"{name}: init on inputs [2, {', '.join(map(str, example_shape))}] failed: "
            f"{type(e).__name__}: {e}. It must be {MODEL_CONTRACT}."
        ) from e
    extra = sorted(set(variables) - {"params"})
    if extra:
        raise ValueError(
            f"{name}: the module has mutable collection(s) {extra} besides 'params' (e.g. "
            "BatchNorm's batch_stats); the engine trains stateless models under vmap: use "
            f"GroupNorm or LayerNorm instead. It must be {MODEL_CONTRACT}."
        )
    for penultimate in (False, True):
        try:
            out = jax.eval_shape(
                lambda v, xb, p=penultimate: model.apply(v, xb, penultimate=p), variables, x
            )
        except TypeError as e:
            if "penultimate" in str(e):
                raise ValueError(
                    f"{name}: __call__ does not take penultimate=...; it must be {MODEL_CONTRACT}."
                ) from e
            raise ValueError(f"{name}: apply failed: {e}. It must be {MODEL_CONTRACT}.") from e
        except Exception as e:  # noqa: BLE001 - a user's module can fail in any way
            raise ValueError(
                f"{name}: apply(params, x, penultimate={penultimate}) failed without RNGs or "
                f"mutable collections: {type(e).__name__}: {e}. It must be {MODEL_CONTRACT}."
            ) from e
        if not hasattr(out, "shape") or not jnp.issubdtype(out.dtype, jnp.floating):
            raise ValueError(
                f"{name}: apply returned {type(out).__name__} "
                f"{getattr(out, 'dtype', '')}; it must return one float array."
            )
        want = (2, num_classes) if not penultimate else None
        if want is not None and tuple(out.shape) != want:
            raise ValueError(
                f"{name}: apply on [2, {', '.join(map(str, example_shape))}] returned shape "
                f"{tuple(out.shape)}; logits must be [batch, num_classes] = {want}."
            )
        if penultimate and len(out.shape) != 2:
            raise ValueError(
                f"{name}: apply(..., penultimate=True) returned shape {tuple(out.shape)}; "
                "features must be [batch, F]."
            )

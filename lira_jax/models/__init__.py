"""Model zoo by name."""

from lira_jax.models.layers import CONV_IMPLS, Conv2D, resolve_conv_impl
from lira_jax.models.zoo import (
    CNN,
    FLAT_INPUT_ARCHS,
    MLP,
    LogReg,
    ResNet9,
    arch_names,
    get_model,
)

__all__ = [
    "CNN",
    "CONV_IMPLS",
    "Conv2D",
    "FLAT_INPUT_ARCHS",
    "LogReg",
    "MLP",
    "ResNet9",
    "arch_names",
    "get_model",
    "resolve_conv_impl",
]

"""Model zoo by name."""

from lira_jax.models.layers import CONV_IMPLS, Conv2D, resolve_conv_impl
from lira_jax.models.zoo import (
    CNN,
    FLAT_INPUT_ARCHS,
    MLP,
    MODEL_CONTRACT,
    LogReg,
    ResNet9,
    WideResNet,
    arch_names,
    check_model,
    get_model,
    is_arch_name,
    is_import_path,
)

__all__ = [
    "CNN",
    "CONV_IMPLS",
    "Conv2D",
    "FLAT_INPUT_ARCHS",
    "LogReg",
    "MLP",
    "MODEL_CONTRACT",
    "ResNet9",
    "WideResNet",
    "arch_names",
    "check_model",
    "get_model",
    "is_arch_name",
    "is_import_path",
    "resolve_conv_impl",
]

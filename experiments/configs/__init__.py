"""Config as code: per-dataset defaults of the training binary.

Every value here can be overridden by the flag of the same name.

    python -m experiments.pipeline --workdir=runs/digits
    # 64 cnn32 models on sklearn digits (1,500 train / 297 test), ~3-5 min on 2 CPU cores;
    # prints LiRA vs global threshold (numbers in docs/results.md, "Attack suite on digits").
"""

from __future__ import annotations

from lira_jax.data import datasets

_COMMON = dict(
    arch="cnn32",
    num_models=64,
    pkeep=0.5,
    epochs=30,
    batch_size=128,
    learning_rate=0.05,
    momentum=0.9,
    weight_decay=5e-4,
    warmup_epochs=2.0,
    augment_shift=1,
    augment_mirror=False,
    queries="cross1",
    seed=0,
    store_test_logits=False,
)

# The LiRA reference setup on natural images: flips + 4-pixel shifts, 18 queries.
_CIFAR = dict(
    _COMMON,
    arch="cnn64",
    epochs=100,
    batch_size=256,
    learning_rate=0.1,
    augment_shift=4,
    augment_mirror=True,
    queries="shift1",
)

DATASET_DEFAULTS: dict[str, dict] = {
    "digits": dict(_COMMON),
    "mnist": dict(_COMMON, epochs=20, batch_size=256, augment_shift=2),
    "fashion_mnist": dict(_COMMON, epochs=20, batch_size=256, augment_shift=2),
    "fashion_mnist_idx": dict(_COMMON, epochs=20, batch_size=256, augment_shift=2),
    "cifar10": dict(_CIFAR),
    "cifar_synth": dict(_CIFAR),  # CIFAR-10's shapes, generated (lira_jax.data.synthetic)
    "cifar100": dict(_CIFAR),
    "svhn_cropped": dict(
        _COMMON, arch="cnn64", epochs=30, batch_size=256, augment_shift=2, queries="cross1"
    ),
    # Tabular (456 train x 30 features): no shifts or mirrors, the identity query only.
    "breast_cancer": dict(
        _COMMON,
        arch="mlp",
        epochs=60,
        batch_size=32,
        learning_rate=0.05,
        weight_decay=0.0,
        augment_shift=0,
        queries="identity",
    ),
}


# DP-SGD's clip norm and δ when --dp_noise_multiplier is given without them (δ = 1e-5 is
# below 1/N for every dataset here).
DP_DEFAULTS = dict(dp_clip_norm=1.0, dp_delta=1e-5)


# A user's tabular file (npz:PATH with x_train [N, F]): no pixels to shift or mirror.
TABULAR_DEFAULTS = dict(_COMMON, arch="mlp", augment_shift=0, queries="identity")


def defaults_for(dataset: str) -> dict:
    """The defaults for `dataset` (the common ones for a dataset not listed; for a user's
    ``npz:`` file the common ones for images, `TABULAR_DEFAULTS` for [N, F] features)."""
    if dataset.startswith(datasets.NPZ_PREFIX):
        tabular = len(datasets.npz_example_shape(dataset)) == 1
        return dict(TABULAR_DEFAULTS if tabular else _COMMON)
    return dict(DATASET_DEFAULTS.get(dataset, _COMMON))

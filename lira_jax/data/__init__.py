"""Datasets, label tasks, membership masks, per-model labels and augmentations."""

from lira_jax.data.augment import Query, apply_query, check_tabular, query_set, random_augment
from lira_jax.data.datasets import (
    NPZ_FORMAT,
    Dataset,
    DatasetError,
    dataset_names,
    from_arrays,
    load_dataset,
    standardise,
)
from lira_jax.data.membership import (
    ModelLabels,
    canary_mask,
    keep_mask,
    label_noise_enabled,
    model_labels,
    private_labels,
    randomized_response,
    rr_keep_probability,
)
from lira_jax.data.tasks import TASK_HELP, apply_task, task_labels, task_mapping

__all__ = [
    "NPZ_FORMAT",
    "TASK_HELP",
    "Dataset",
    "DatasetError",
    "ModelLabels",
    "Query",
    "apply_query",
    "apply_task",
    "canary_mask",
    "check_tabular",
    "dataset_names",
    "from_arrays",
    "keep_mask",
    "label_noise_enabled",
    "load_dataset",
    "model_labels",
    "private_labels",
    "query_set",
    "random_augment",
    "randomized_response",
    "rr_keep_probability",
    "standardise",
    "task_labels",
    "task_mapping",
]

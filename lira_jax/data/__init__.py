"""Datasets, membership masks and augmentations."""

from lira_jax.data.augment import Query, apply_query, query_set, random_augment
from lira_jax.data.datasets import Dataset, DatasetError, dataset_names, load_dataset
from lira_jax.data.membership import keep_mask

__all__ = [
    "Dataset",
    "DatasetError",
    "Query",
    "apply_query",
    "dataset_names",
    "keep_mask",
    "load_dataset",
    "query_set",
    "random_augment",
]

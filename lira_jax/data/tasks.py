"""Label tasks: a dataset's own classes, or a binary task carved out of them.

Design notes: a task is a map from the dataset's class indices to the task's labels, with
-1 for classes the task drops. `all` is the identity; `pair:A,B` keeps only classes A and B
(relabelled 0 and 1; every other example leaves both the training pool and the test set);
`parity` maps each class index to its parity (even 0, odd 1). The map is a pure function of
the task name and the number of classes, so every process derives the same pool.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from lira_jax.data.datasets import Dataset

TASK_HELP = "all, pair:A,B (two class indices, relabelled 0/1) or parity (even vs odd class)"


def task_mapping(task: str, num_classes: int) -> np.ndarray:
    """The task's map from class index to task label.

    Args:
      task: "all", "pair:A,B" or "parity".
      num_classes: C, the dataset's number of classes.

    Returns:
      mapping: [C] int32; mapping[c] is class c's task label, -1 if the task drops class c.

    Raises:
      ValueError: an unknown task, or class indices outside [0, C).
    """
    if not isinstance(task, str):
        raise ValueError(f"task={task!r} must be a string: {TASK_HELP}.")
    if num_classes < 2:
        raise ValueError(f"num_classes={num_classes}: a classification task needs >= 2 classes.")
    classes = np.arange(num_classes)
    if task == "all":
        return classes.astype(np.int32)
    if task == "parity":
        return (classes % 2).astype(np.int32)
    if task.startswith("pair:"):
        parts = task[len("pair:") :].split(",")
        try:
            a, b = (int(p) for p in parts)
        except ValueError:
            raise ValueError(
                f"task={task!r}: write a pair as pair:A,B with two class indices, e.g. pair:3,5."
            ) from None
        if a == b or not (0 <= a < num_classes and 0 <= b < num_classes):
            raise ValueError(
                f"task={task!r}: A and B must be two different classes in [0, {num_classes})."
            )
        mapping = np.full(num_classes, -1, np.int32)
        mapping[a], mapping[b] = 0, 1
        return mapping
    raise ValueError(f"Unknown task {task!r}; use {TASK_HELP}.")


def task_num_classes(task: str, num_classes: int) -> int:
    """Number of classes of `task` on a dataset with `num_classes` classes."""
    return int(task_mapping(task, num_classes).max()) + 1


def task_labels(labels: np.ndarray, task: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Applies a task to labels.

    Args:
      labels: [N] int class indices in [0, num_classes).
      task: see `task_mapping`.
      num_classes: the dataset's number of classes.

    Returns:
      (selected [N] bool: the examples the task keeps, new_labels [selected.sum()] int32).
    """
    mapping = task_mapping(task, num_classes)
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"labels range [{labels.min()}, {labels.max()}] is outside [0, {num_classes})."
        )
    new = mapping[labels]
    selected = new >= 0
    return selected, new[selected].astype(np.int32)


def apply_task(ds: Dataset, task: str) -> Dataset:
    """The dataset restricted and relabelled to `task` (the same object for "all").

    Features are unchanged (already standardised with the full training pool's statistics,
    so a task's pool is a subset of the same feature space for every task).

    Raises:
      ValueError: an unknown task, or one that leaves a split without both classes.
    """
    if task == "all":
        task_mapping(task, ds.num_classes)  # validates num_classes
        return ds
    sel_tr, y_tr = task_labels(ds.y_train, task, ds.num_classes)
    sel_te, y_te = task_labels(ds.y_test, task, ds.num_classes)
    k = task_num_classes(task, ds.num_classes)
    for split, y in (("train", y_tr), ("test", y_te)):
        if np.unique(y).size < k:
            raise ValueError(
                f"task={task!r} on {ds.name!r} leaves the {split} split with labels "
                f"{np.unique(y).tolist()}; every one of its {k} classes must be present."
            )
    return dataclasses.replace(
        ds,
        x_train=ds.x_train[sel_tr],
        y_train=y_tr,
        x_test=ds.x_test[sel_te],
        y_test=y_te,
        num_classes=k,
        task=task,
    )

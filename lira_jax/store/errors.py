"""The store's errors: each message says what is wrong and what to do."""

from __future__ import annotations

TRAIN_HINT = "run `python -m experiments.train_shadows --workdir=...` first"


class StoreError(ValueError):
    """Base error of the logit store; the message says what is wrong and what to do."""


class StoreMismatchError(StoreError):
    """An existing store was created with a different config, shape or membership."""


class BlockClaimedError(StoreError):
    """Another live process is writing an overlapping model range."""


class IncompleteStoreError(StoreError):
    """Some model blocks of the store have not been written (yet)."""

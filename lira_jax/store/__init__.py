"""The sharded logit store: the only place where training and analysis meet.

A store is a zarr v3 group on disk, written with tensorstore and readable with plain ``zarr``
or ``tensorstore`` (no lira_jax import needed)::

    path/zarr.json                      group; attributes["lira_jax"] holds the metadata
    path/logits                         [models, examples, queries, classes] float32 (or float16)
    path/keep                           [models, examples] bool: example n in model m's train set
    path/labels                         [examples] int32: the dataset's true labels
    path/test_logits                    [models, test examples, classes] (optional)
    path/test_labels                    [test examples] int32 (optional, with test_logits)
    path/canary                         [examples] bool (optional: canaries or label-DP on)
    path/private_labels                 [models, examples] int32 (optional, with canary)
    path/train_labels                   [models, examples] int32 (optional, with canary)
    path/_blocks/zarr.json              empty zarr group, so plain zarr lists `_blocks` cleanly
    path/_blocks/m{start:06d}-{stop:06d}.json   one completion record per written model block

Arrays use the ``zarr3`` driver with codecs ``bytes`` (little endian) + ``zstd`` (level 3).
Arrays with a models axis (``logits``, ``keep``, ``test_logits``, ``private_labels``,
``train_labels``) are chunked one model per chunk ([1, N, A, C], [1, N], ...).

Modules: `schema` (the spec, the metadata and the table of optional arrays), `files`
(atomic writes, tensorstore arrays, checksums), `claims` (which process writes which model
range), `logit_store` (create, open, read, verify, write), `exchange` (the files exchanged
with other frameworks: the query export and a target's outputs). Design notes in each.

Plain zarr emits a ``ZarrUserWarning`` for the record files only when walking the hierarchy
recursively (``group.tree()``, ``members(max_depth=None)``); opening arrays, reading
attributes and listing the root group are unaffected.
"""

from lira_jax.store.claims import CLAIM_HEARTBEAT_SECONDS, CLAIM_LEASE_SECONDS
from lira_jax.store.errors import (
    BlockClaimedError,
    IncompleteStoreError,
    StoreError,
    StoreMismatchError,
)
from lira_jax.store.files import _array_spec, os_error_of, write_arrays_atomic, write_text_atomic
from lira_jax.store.logit_store import LazyLogits, LogitStore, create_or_open, open_store
from lira_jax.store.schema import (
    FORMAT_VERSION,
    OPTIONAL_ARRAYS,
    OptionalArray,
    StoreSpec,
    config_fingerprint,
)

__all__ = [
    "CLAIM_HEARTBEAT_SECONDS",
    "CLAIM_LEASE_SECONDS",
    "FORMAT_VERSION",
    "OPTIONAL_ARRAYS",
    "BlockClaimedError",
    "IncompleteStoreError",
    "LazyLogits",
    "LogitStore",
    "OptionalArray",
    "StoreError",
    "StoreMismatchError",
    "StoreSpec",
    "_array_spec",
    "config_fingerprint",
    "create_or_open",
    "open_store",
    "os_error_of",
    "write_arrays_atomic",
    "write_text_atomic",
]

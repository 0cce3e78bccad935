"""Training: the multi-model engine (sharded over local devices), logit queries, and the
split of model ranges over devices and processes."""

from lira_jax.train import sharding
from lira_jax.train.engine import (
    BACKEND_DEFAULTS,
    COMPUTE_DTYPES,
    Engine,
    TrainConfig,
    auto_models_per_step,
    backend_defaults,
    bytes_per_model,
    epoch_batches,
    model_keys,
    steps_per_epoch,
)
from lira_jax.train.query import (
    QUERY_DEFAULTS,
    BlockQueries,
    QueryLayout,
    query_block,
    query_conv_impl,
    query_layout,
    query_logits,
)
from lira_jax.train.sharding import initialize_distributed, models_mesh, process_share

__all__ = [
    "BACKEND_DEFAULTS",
    "QUERY_DEFAULTS",
    "BlockQueries",
    "QueryLayout",
    "COMPUTE_DTYPES",
    "Engine",
    "TrainConfig",
    "auto_models_per_step",
    "backend_defaults",
    "bytes_per_model",
    "epoch_batches",
    "initialize_distributed",
    "model_keys",
    "models_mesh",
    "process_share",
    "query_block",
    "query_conv_impl",
    "query_layout",
    "query_logits",
    "sharding",
    "steps_per_epoch",
]

"""Training: the multi-model engine (sharded over local devices), logit queries, the split
of model ranges over devices and processes, the run loop that fills a store (`run`), DP-SGD
and its privacy accounting."""

from lira_jax.train import accounting, dpsgd, params, run, sharding
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
from lira_jax.train.params import SavedParams, load_params, params_sha256
from lira_jax.train.query import (
    QUERY_DEFAULTS,
    QueryLayout,
    QueryResult,
    query_conv_impl,
    query_layout,
    query_logits,
    query_pass,
)
from lira_jax.train.sharding import initialize_distributed, models_mesh, process_share

__all__ = [
    "BACKEND_DEFAULTS",
    "QUERY_DEFAULTS",
    "QueryResult",
    "QueryLayout",
    "COMPUTE_DTYPES",
    "Engine",
    "SavedParams",
    "TrainConfig",
    "accounting",
    "auto_models_per_step",
    "backend_defaults",
    "bytes_per_model",
    "dpsgd",
    "epoch_batches",
    "initialize_distributed",
    "load_params",
    "model_keys",
    "models_mesh",
    "params",
    "params_sha256",
    "process_share",
    "query_pass",
    "query_conv_impl",
    "query_layout",
    "query_logits",
    "run",
    "sharding",
    "steps_per_epoch",
]

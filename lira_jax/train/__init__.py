"""Training: the vmapped multi-model engine and the logit queries."""

from lira_jax.train.engine import Engine, TrainConfig, model_keys, query_logits, steps_per_epoch

__all__ = ["Engine", "TrainConfig", "model_keys", "query_logits", "steps_per_epoch"]

"""lira_jax: many vmapped shadow models, a sharded logit store, and attacks on it.

Submodules, in the order data flows through them:

- `lira_jax.data`: datasets, keep masks, augmentations and query sets.
- `lira_jax.models`: the model zoo by name.
- `lira_jax.train`: the vmapped multi-model engine and logit queries.
- `lira_jax.store`: the zarr v3 logit store (the only place training and analysis meet).
- `lira_jax.signals`: per-example statistics of logits (φ, loss, correctness), float64.
- `lira_jax.attacks`: membership-inference attacks and their leave-one-model-out evaluation.
- `lira_jax.memorization`, `lira_jax.sample_complexity`: memorization and shadow-model curves.
- `lira_jax.shadow_budget`: how many shadow models to train (pilot, selection, stopping rule).
- `lira_jax.dp_audit`: empirical ε lower bounds of a DP audit (jax-privacy's auditor).
- `lira_jax.metrics`: ROC, AUC, TPR at low FPR.
- `lira_jax.report`: Markdown tables and plots (the only matplotlib user).

Submodules are imported on use (`from lira_jax import store`), so reading a store does
not import JAX.
"""

__version__ = "0.1.0"

__all__ = [
    "attacks",
    "data",
    "dp_audit",
    "memorization",
    "metrics",
    "models",
    "report",
    "sample_complexity",
    "shadow_budget",
    "signals",
    "store",
    "train",
]

"""Reports: Markdown tables and ROC plots of attack results."""

from lira_jax.report.audit import audit_markdown, plot_exposed_examples, plot_score_distributions
from lira_jax.report.plots import plot_roc
from lira_jax.report.tables import markdown_table

__all__ = [
    "audit_markdown",
    "markdown_table",
    "plot_exposed_examples",
    "plot_roc",
    "plot_score_distributions",
]

"""Reports: Markdown tables and ROC plots of attack results."""

from lira_jax.report.plots import plot_roc
from lira_jax.report.tables import markdown_table

__all__ = ["markdown_table", "plot_roc"]

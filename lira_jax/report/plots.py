"""ROC plots (the only module that imports matplotlib; always the Agg backend).

Uses `matplotlib.figure.Figure` with an Agg canvas directly rather than pyplot, so no
global backend or figure state is touched and no display is needed.
"""

from __future__ import annotations

import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from lira_jax import metrics

__all__ = ["plot_roc"]


def plot_roc(
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    path: str | os.PathLike,
    title: str = "Membership inference ROC",
    min_fpr: float | None = None,
) -> str:
    """Writes a log-log ROC plot (as in the LiRA paper) to a PNG file.

    Args:
      curves: attack name -> (fpr, tpr) from `metrics.roc_curve`.
      path: output PNG path; its parent directory must exist.
      title: plot title.
      min_fpr: left end of the x axis. Default: max(1e-5, smallest non-zero FPR of any
        curve), i.e. 1/num_negatives for `metrics.roc_curve` curves.

    Returns:
      The path written, as a string.
    """
    if not curves:
        raise ValueError("curves is empty: nothing to plot.")
    if min_fpr is None:
        smallest = min(
            float(np.min(np.asarray(fpr)[np.asarray(fpr) > 0], initial=1.0))
            for fpr, _ in curves.values()
        )
        min_fpr = max(1e-5, smallest)

    fig = Figure(figsize=(5, 5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, (fpr, tpr) in curves.items():
        ax.plot(fpr, tpr, label=f"{name} (AUC={metrics.auc(fpr, tpr):.3f})")
    ax.plot([min_fpr, 1], [min_fpr, 1], ls="--", color="gray", lw=1, label="chance")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(min_fpr, 1)
    ax.set_ylim(min_fpr, 1)
    ax.set_xlabel("False positive rate")
    ax.set_ylabel("True positive rate")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize="small")
    ax.grid(True, which="major", alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.fspath(path), format="png")
    return os.fspath(path)

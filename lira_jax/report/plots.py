"""ROC plots (the only module that imports matplotlib; always the Agg backend).

Uses `matplotlib.figure.Figure` with an Agg canvas directly rather than pyplot, so no
global backend or figure state is touched and no display is needed. With more curves
than the 10 colours of the default cycle, colours come from `tab20` and line styles
alternate, so a dozen overlaid attacks stay distinguishable; the legend then moves below
the axes.
"""

from __future__ import annotations

import os

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from lira_jax import metrics

__all__ = ["plot_roc"]

_MAX_POINTS = 4000


def _thin(fpr: np.ndarray, tpr: np.ndarray, min_fpr: float) -> tuple[np.ndarray, np.ndarray]:
    """At most ~_MAX_POINTS points of a long ROC, log-spaced in FPR (a pooled ROC can have
    millions of points; on log axes the dropped ones lie within a pixel of the kept ones)."""
    if fpr.size <= _MAX_POINTS:
        return fpr, tpr
    grid = np.logspace(np.log10(min_fpr) - 1, 0, _MAX_POINTS // 2)
    idx = np.searchsorted(fpr, grid, side="right") - 1
    # Keep the last point at each FPR (top of a vertical step) and the one just after it.
    idx = np.unique(np.clip(np.r_[0, idx, idx + 1, fpr.size - 1], 0, fpr.size - 1))
    return fpr[idx], tpr[idx]


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

    many = len(curves) > 10
    fig = Figure(figsize=(6, 6 + 0.22 * len(curves)) if many else (5, 5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    colors = matplotlib.colormaps["tab20" if many else "tab10"]
    styles = ("-", "--", "-.", ":")
    for i, (name, (fpr, tpr)) in enumerate(curves.items()):
        x, y = _thin(np.asarray(fpr), np.asarray(tpr), min_fpr)
        ax.plot(
            x,
            y,
            color=colors(i % colors.N),
            ls=styles[i % len(styles)] if many else "-",
            lw=1.3,
            label=f"{name} (AUC={metrics.auc(fpr, tpr):.3f})",
        )
    ax.plot([min_fpr, 1], [min_fpr, 1], ls="--", color="gray", lw=1, label="chance")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(min_fpr, 1)
    ax.set_ylim(min_fpr, 1)
    ax.set_xlabel("False positive rate")
    ax.set_ylabel("True positive rate")
    ax.set_title(title)
    if many:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), fontsize="small", ncol=2)
    else:
        ax.legend(loc="lower right", fontsize="small")
    ax.grid(True, which="major", alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.fspath(path), format="png")
    return os.fspath(path)

"""Plots of memorization and sample-complexity results (PNG, matplotlib Agg canvas).

Design notes: like `lira_jax.report.plots`, every function draws on its own
`matplotlib.figure.Figure` with an Agg canvas (no pyplot, no global state, no display)
and writes one PNG. Inputs are plain arrays or the JSON-serialisable dicts of
`lira_jax.sample_complexity`, so a plot can be redrawn from a saved results file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from lira_jax.memorization import DEFAULT_BUCKET_THRESHOLDS

__all__ = [
    "plot_memorization_histogram",
    "plot_privacy_vs_memorization",
    "plot_shadow_model_curves",
]


def _figure(size: tuple[float, float] = (5.5, 4.0)) -> tuple[Figure, object]:
    fig = Figure(figsize=size, dpi=120)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _save(fig: Figure, path: str | os.PathLike) -> str:
    fig.tight_layout()
    fig.savefig(os.fspath(path), format="png")
    return os.fspath(path)


def _as_1d(values: np.ndarray, name: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"{name} must be a non-empty [examples] array, got shape {values.shape}.")
    return values


def plot_memorization_histogram(
    mem: np.ndarray,
    path: str | os.PathLike,
    *,
    soft_mem: np.ndarray | None = None,
    thresholds: Sequence[float] = DEFAULT_BUCKET_THRESHOLDS,
    bins: int = 40,
    title: str = "Label memorization",
) -> str:
    """Histogram of memorization scores (log-count axis), with the bucket edges marked.

    Args:
      mem: [examples] memorization in [−1, 1].
      path: output PNG path; its parent directory must exist.
      soft_mem: optional [examples] soft memorization, drawn as a step outline.
      thresholds: bucket edges, drawn as vertical dashed lines.
      bins: number of bins over [−1, 1].
      title: plot title.

    Returns:
      The path written.
    """
    mem = _as_1d(mem, "mem")
    edges = np.linspace(-1.0, 1.0, bins + 1)
    fig, ax = _figure()
    ax.hist(mem, bins=edges, color="tab:blue", alpha=0.7, label=f"memorization (n={mem.size})")
    if soft_mem is not None:
        ax.hist(
            _as_1d(soft_mem, "soft_mem"),
            bins=edges,
            histtype="step",
            color="tab:orange",
            lw=1.5,
            label="soft memorization (p_y)",
        )
    for t in thresholds:
        ax.axvline(t, ls="--", color="gray", lw=1)
    ax.set_yscale("log")
    ax.set_xlim(-1.0, 1.0)
    ax.set_xlabel("memorization score")
    ax.set_ylabel("number of examples")
    ax.set_title(title)
    ax.legend(fontsize="small")
    return _save(fig, path)


def plot_privacy_vs_memorization(
    mem: np.ndarray,
    score: np.ndarray,
    path: str | os.PathLike,
    *,
    groups: np.ndarray | None = None,
    group_names: Sequence[str] | None = None,
    spearman: dict | None = None,
    title: str = "Privacy score vs memorization",
) -> str:
    """Scatter of the privacy score against memorization, coloured by group.

    Examples with an infinite or NaN privacy score (σ_in = σ_out = 0) are left out and
    counted in the legend.

    Args:
      mem: [examples] memorization.
      score: [examples] privacy score.
      path: output PNG path.
      groups: optional [examples] int group (e.g. memorization bucket); names by index.
      group_names: names of the groups (default "group g").
      spearman: optional `sample_complexity.memorization_privacy_spearman` result, shown
        in the title.
      title: plot title.

    Returns:
      The path written.
    """
    mem = _as_1d(mem, "mem")
    score = _as_1d(score, "score")
    if score.shape != mem.shape:
        raise ValueError(f"mem {mem.shape} and score {score.shape} differ in shape.")
    if groups is None:
        groups = np.zeros(mem.size, np.int64)
        group_names = group_names or ["examples"]
    groups = np.asarray(groups)
    if groups.shape != mem.shape:
        raise ValueError(f"groups {groups.shape} must match mem {mem.shape}.")
    finite = np.isfinite(score) & np.isfinite(mem)
    fig, ax = _figure()
    for g in np.unique(groups):
        sel = finite & (groups == g)
        name = group_names[g] if group_names is not None and g < len(group_names) else f"group {g}"
        ax.scatter(mem[sel], score[sel], s=6, alpha=0.6, label=f"{name} (n={int(sel.sum())})")
    dropped = int((~finite).sum())
    if dropped:
        ax.plot([], [], " ", label=f"{dropped} non-finite score(s) not shown")
    if spearman is not None and spearman.get("rho") is not None:
        p = spearman.get("pvalue")
        title = f"{title}\nSpearman ρ = {spearman['rho']:.3f}" + (
            f", p = {p:.2g}" if p is not None else ""
        )
    ax.set_xlabel("memorization score")
    ax.set_ylabel("privacy score |μ_in − μ_out| / (σ_in + σ_out)")
    ax.set_title(title, fontsize="medium")
    ax.legend(fontsize="small", markerscale=2)
    ax.grid(True, alpha=0.3)
    return _save(fig, path)


def _metric_summary(entry: dict, metric: str) -> dict:
    if metric == "auc":
        return entry["auc"]
    if metric.startswith("tpr_at_fpr:") and metric.split(":", 1)[1] in entry["tpr_at_fpr"]:
        return entry["tpr_at_fpr"][metric.split(":", 1)[1]]
    raise ValueError(
        f"{metric=} must be 'auc' or 'tpr_at_fpr:<level>' with a level among "
        f"{list(entry['tpr_at_fpr'])}."
    )


def _floats(values: Sequence) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def plot_shadow_model_curves(
    result: dict,
    path: str | os.PathLike,
    *,
    attack: str = "lira_online_fixed_variance",
    metric: str = "auc",
    groups: Sequence[str] | None = None,
    target: float | None = 0.9,
    title: str | None = None,
) -> str:
    """Attack success against the number of shadow models per side, one line per group.

    Lines are the median over draws, bands the result's percentile interval; a dashed
    line of the same colour marks the attack with all M − 1 shadows, if computed.

    Args:
      result: from `lira_jax.sample_complexity.shadow_model_curves`.
      path: output PNG path.
      attack: which attack of the result.
      metric: "auc" or "tpr_at_fpr:<level>" (a level present in the result).
      groups: which groups to draw (default all, "all" included).
      target: draw a dotted horizontal line at this level (None: no line).
      title: plot title (default names the attack and the number of targets/draws).

    Returns:
      The path written.
    """
    if attack not in result["attacks"]:
        raise ValueError(f"{attack=} is not in the result; available: {list(result['attacks'])}.")
    per_group = result["attacks"][attack]["groups"]
    groups = list(per_group) if groups is None else list(groups)
    missing = [g for g in groups if g not in per_group]
    if missing:
        raise ValueError(f"groups {missing} not in the result; available: {list(per_group)}.")
    ks = np.asarray(result["ks"], dtype=np.float64)
    fig, ax = _figure((6.0, 4.2))
    for i, g in enumerate(groups):
        color = f"C{i}"
        summary = _metric_summary(per_group[g], metric)
        n = result["groups"][g]["num_examples"]
        n = f"{n:.0f}" if float(n).is_integer() else f"{n:.1f}"
        ax.plot(ks, _floats(summary["median"]), marker="o", ms=3, color=color, label=f"{g} (n={n})")
        ax.fill_between(
            ks, _floats(summary["lo"]), _floats(summary["hi"]), color=color, alpha=0.2, lw=0
        )
        ref = per_group[g].get("all_shadows")
        if ref is not None:
            value = ref["auc"] if metric == "auc" else ref["tpr_at_fpr"][metric.split(":", 1)[1]]
            if value is not None:
                ax.axhline(value, color=color, ls="--", lw=1)
    if target is not None:
        ax.axhline(target, color="black", ls=":", lw=1, label=f"target {target:g}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [str(int(k)) for k in ks])
    ax.set_xlabel("shadow models per side k (k IN + k OUT)")
    ax.set_ylabel("AUC" if metric == "auc" else f"TPR at FPR {metric.split(':', 1)[1]}")
    if title is None:
        title = (
            f"{attack}: {result['num_targets']} targets, {result['num_draws']} draws, "
            f"{int(100 * result['interval'])}% band; dashed: all {result['num_models'] - 1} shadows"
        )
    ax.set_title(title, fontsize="small")
    ax.legend(fontsize="small")
    ax.grid(True, which="major", alpha=0.3)
    return _save(fig, path)

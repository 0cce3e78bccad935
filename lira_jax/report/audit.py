"""Reports of an external target's audit: its table, the score distributions, and the most
exposed examples (PNG, matplotlib Agg canvas; see `lira_jax.report.plots`).

Inputs are the dicts and arrays of `lira_jax.attacks.external.ExternalAudit`, so a report
can be redrawn from a saved audit.json and scores.csv.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from lira_jax.report.curves import _figure, _save
from lira_jax.report.tables import markdown_table

__all__ = ["audit_markdown", "plot_exposed_examples", "plot_score_distributions"]


def _quantile_table(results: Mapping[str, dict]) -> str:
    rows = [
        "| attack | min | 1% | 5% | 25% | median | 75% | 95% | 99% | max |",
        "|---|" + "---:|" * 9,
    ]
    for name, res in results.items():
        if res.get("undefined"):
            rows.append(f"| {name} | undefined: {res['reason']} |" + " |" * 8)
            continue
        q = res["score_quantiles"]
        cells = [f"{q[k]:.4g}" for k in ("0", "0.01", "0.05", "0.25", "0.5", "0.75", "0.95")]
        cells += [f"{q[k]:.4g}" for k in ("0.99", "1")]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def audit_markdown(
    title: str,
    results: Mapping[str, dict],
    recipe: dict,
    top: Sequence[dict],
    rank_by: str,
    has_keep: bool,
    notes: Sequence[str] = (),
) -> str:
    """audit.md: the recipe check, the attack table (with keep: `markdown_table`; without:
    each attack's score quantiles) and the most exposed examples."""
    lines = [f"# Audit of {title}", ""]
    t, s = recipe["target"], recipe["shadows"]
    if has_keep:
        lines.append(
            f"Target accuracy (identity query): members {t['in']:.3f}, non-members "
            f"{t['out']:.3f}; shadows: members {s['in']:.3f}, non-members {s['out']:.3f}."
        )
    else:
        lines.append(
            f"Target accuracy on the pool (identity query): {t['all']:.3f}; shadows "
            f"{s['all']:.3f}. No membership given (--target_keep): scores and ranking only."
        )
    if recipe.get("warning"):
        lines += ["", f"**Warning.** {recipe['warning']}"]
    lines += ["", *[f"{n}" for n in notes]] if notes else []
    lines += ["", markdown_table(results) if has_keep else _quantile_table(results), ""]
    lines += [f"## The {len(top)} most exposed examples (by {rank_by})", ""]
    member = "| member " if has_keep else ""
    lines += [
        f"| rank | index | label {member}| score |",
        "|---:|---:|---:|" + ("---|" if has_keep else "") + "---:|",
    ]
    for r, row in enumerate(top, 1):
        cell = f"| {'yes' if row['member'] else 'no'} " if has_keep else ""
        lines.append(f"| {r} | {row['index']} | {row['label']} {cell}| {row['score']:.4g} |")
    return "\n".join(lines) + "\n"


def plot_score_distributions(
    scores: Mapping[str, np.ndarray],
    path: str | os.PathLike,
    keep: np.ndarray | None = None,
    title: str = "Attack scores of the target",
) -> str:
    """One histogram per attack of the target's scores (members and non-members apart when
    `keep` is given)."""
    names = list(scores)
    if not names:
        raise ValueError("scores is empty: nothing to plot.")
    cols = min(4, len(names))
    rows = -(-len(names) // cols)
    fig, _ = _figure((3.2 * cols, 2.4 * rows))
    fig.clf()
    for i, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, i + 1)
        s = np.asarray(scores[name], np.float64)
        finite = s[np.isfinite(s)]
        bins = np.histogram_bin_edges(finite, bins=40) if finite.size else 10
        if keep is None:
            ax.hist(finite, bins=bins, color="tab:blue")
        else:
            ax.hist(s[keep & np.isfinite(s)], bins=bins, alpha=0.6, label="members")
            ax.hist(s[~keep & np.isfinite(s)], bins=bins, alpha=0.6, label="non-members")
            if i == 0:
                ax.legend(fontsize="x-small")
        ax.set_title(name, fontsize="small")
        ax.tick_params(labelsize="x-small")
    fig.suptitle(title)
    return _save(fig, path)


def plot_exposed_examples(
    indices: Sequence[int],
    scores: Sequence[float],
    labels: Sequence[int],
    path: str | os.PathLike,
    *,
    images: np.ndarray | None = None,
    members: Sequence[bool] | None = None,
    title: str = "Most exposed examples",
) -> str:
    """The most exposed examples: a grid of images (each scaled to its own range) with index,
    label and score; without images (tabular data, or data not available) a bar chart of
    the scores."""
    k = len(indices)
    if k == 0:
        raise ValueError("no example to plot.")
    captions = [
        f"#{i} y={y}" + ("" if members is None else (" IN" if m else " OUT")) + f"\n{s:.3g}"
        for i, y, s, m in zip(
            indices, labels, scores, members if members is not None else [None] * k, strict=True
        )
    ]
    if images is None or images.ndim != 4:
        fig, ax = _figure((max(5.0, 0.4 * k), 3.5))
        ax.bar(range(k), scores)
        ax.set_xticks(range(k), [c.replace("\n", " ") for c in captions], rotation=90)
        ax.tick_params(labelsize="x-small")
        ax.set_ylabel("score")
        ax.set_title(title)
        return _save(fig, path)
    cols = min(10, k)
    rows = -(-k // cols)
    fig, _ = _figure((1.4 * cols, 1.7 * rows + 0.4))
    fig.clf()
    for j in range(k):
        ax = fig.add_subplot(rows, cols, j + 1)
        img = np.asarray(images[j], np.float64)
        lo, hi = img.min(), img.max()
        img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
        ax.set_title(captions[j], fontsize=6)
        ax.axis("off")
    fig.suptitle(title, fontsize="small")
    return _save(fig, path)

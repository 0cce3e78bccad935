"""The defense sweep's report: Markdown tables and a plot of attack success per setting.

Design notes: inputs are the JSON-ready setting entries of `experiments.label_only` — each
{"name", "defense", "strength", "exposure", "train_accuracy", "test_accuracy",
"results": {attack: `evaluate_signals` entry}} — so both can be redrawn from a saved
``label_only.json``. The tables put attacks in rows and settings in columns, one table
per metric (AUC, then TPR at each FPR level), with bootstrap intervals when the entries
have them. The plot has one panel per defense family (e.g. weight decay, DP-SGD's noise
multiplier) with its strengths evenly spaced on the x axis (labelled by value, so 0 and
a log scale need no special case), and one line per attack: AUC of the target exposing
logits; label-only attacks dashed. Like the other report modules it draws on its own Agg
`Figure` (no pyplot).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from lira_jax.report.tables import _fmt, _fpr_label

__all__ = ["defense_tables", "plot_defenses", "setting_label"]

_LEVELS = ("0.01", "0.001")
_AXIS_LABELS = {"weight_decay": "weight decay (L2)", "dp_sgd": "DP-SGD noise multiplier σ"}


def setting_label(entry: dict) -> str:
    """A column name: the setting's name, and "labels only" under that exposure."""
    return entry["name"] + (" · labels only" if entry.get("exposure") == "labels" else "")


def _attack_names(settings: Sequence[dict]) -> list[str]:
    names: dict[str, None] = {}
    for entry in settings:
        names.update(dict.fromkeys(entry["results"]))
    return list(names)


def _cell(res: dict | None, metric: str) -> str:
    if res is None:
        return "—"
    if res.get("undefined"):
        return "undefined"
    ci = res.get("ci") or {}
    if metric == "auc":
        return _fmt(res["auc"], ci.get("auc"), False)
    if metric in set(res.get("fpr_out_of_reach", ())):
        return "n/a"
    return _fmt(res["tpr_at_fpr"][metric], (ci.get("tpr_at_fpr") or {}).get(metric), True)


def _acc(value) -> str:
    return "—" if value is None else f"{value:.3f}"


def defense_tables(settings: Sequence[dict], levels: Sequence[str] = _LEVELS) -> str:
    """The settings table, then one attack × setting table per metric.

    Args:
      settings: `experiments.label_only` setting entries, in column order.
      levels: FPR levels (keys of "tpr_at_fpr") tabulated after the AUC.

    Returns:
      Markdown: settings (defense, strength, exposure, mean train/test accuracy of the
      models), "AUC", "TPR at FPR = …" tables ("undefined" with the reasons listed below;
      "n/a" where the FPR is below 1/negatives; "—" where an attack did not run), and the
      numbers of members / non-members behind each column.

    Raises:
      ValueError: no settings.
    """
    if not settings:
        raise ValueError("settings is empty: nothing to tabulate.")
    lines = [
        "| setting | defense | strength | exposure | train acc | test acc |",
        "|---|---|---:|---|---:|---:|",
    ]
    for e in settings:
        lines.append(
            f"| {e['name']} | {e['defense']} | {e['strength']:g} | {e.get('exposure', 'logits')} "
            f"| {_acc(e.get('train_accuracy'))} | {_acc(e.get('test_accuracy'))} |"
        )
    names = _attack_names(settings)
    header = "| attack | " + " | ".join(setting_label(e) for e in settings) + " |"
    rule = "|---|" + "---:|" * len(settings)
    for metric in ("auc", *levels):
        title = "AUC" if metric == "auc" else f"TPR at FPR = {_fpr_label(metric)}"
        lines += ["", f"**{title}**", "", header, rule]
        for name in names:
            cells = [_cell(e["results"].get(name), metric) for e in settings]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    notes, counts = {}, {}
    for e in settings:
        for name, res in e["results"].items():
            if res.get("undefined"):
                notes.setdefault(f"{name}: {res.get('reason', '')}", []).append(setting_label(e))
            else:
                key = (res["num_positives"], res["num_negatives"], res.get("num_targets"))
                counts.setdefault(key, set()).add(name)
    lines.append("")
    for (pos, neg, targets), which in sorted(counts.items(), key=str):
        lines.append(
            f"- {pos} members, {neg} non-members"
            + (f" ({targets} targets)" if targets is not None else "")
            + f": {', '.join(sorted(which))}."
        )
    cis = [r["ci"] for e in settings for r in e["results"].values() if r.get("ci")]
    if cis:
        lines.append(
            f"- [lo, hi]: {100 * cis[0]['level']:g}% bootstrap intervals over "
            f"{cis[0]['num_bootstrap']} resamples of the examples."
        )
    for note, where in notes.items():
        lines.append(f"- undefined in {', '.join(where)}: {note}")
    return "\n".join(lines) + "\n"


def plot_defenses(settings: Sequence[dict], path: str | os.PathLike, title: str = "") -> str:
    """AUC against defense strength, one panel per defense, one line per attack.

    Only settings with exposure "logits" are drawn (under "labels" the score-based
    attacks are undefined and the label-only ones unchanged); attacks whose name starts
    with "label_only" are dashed.

    Args:
      settings: `experiments.label_only` setting entries.
      path: output PNG path (its directory must exist).
      title: figure title.

    Returns:
      The path written, as a string.

    Raises:
      ValueError: no setting with exposure "logits" and a defined attack.
    """
    drawn = [e for e in settings if e.get("exposure", "logits") == "logits"]
    defenses = list(dict.fromkeys(e["defense"] for e in drawn))
    names = [
        n
        for n in _attack_names(drawn)
        if any(not e["results"].get(n, {"undefined": True}).get("undefined") for e in drawn)
    ]
    if not defenses or not names:
        raise ValueError("Nothing to plot: no setting with exposure 'logits' and a defined attack.")
    fig = Figure(figsize=(4.8 * len(defenses) + 2.6, 4.4), dpi=120)
    FigureCanvasAgg(fig)
    colors = matplotlib.colormaps["tab20"]
    axes = fig.subplots(1, len(defenses), squeeze=False, sharey=True)[0]
    for ax, defense in zip(axes, defenses, strict=True):
        rows = sorted((e for e in drawn if e["defense"] == defense), key=lambda e: e["strength"])
        xs = range(len(rows))
        for i, name in enumerate(names):
            auc = [
                None
                if e["results"].get(name, {"undefined": True}).get("undefined")
                else e["results"][name]["auc"]
                for e in rows
            ]
            pts = [(x, a) for x, a in zip(xs, auc, strict=True) if a is not None]
            if not pts:
                continue
            ax.plot(
                [p[0] for p in pts],
                [p[1] for p in pts],
                marker="o",
                ms=3.5,
                lw=1.3,
                color=colors(i % colors.N),
                ls="--" if name.startswith("label_only") else "-",
                label=name,
            )
        ax.set_xticks(list(xs), [f"{e['strength']:g}" for e in rows])
        ax.set_xlabel(_AXIS_LABELS.get(defense, defense.replace("_", " ")))
        ax.set_ylabel("AUC")
        ax.axhline(0.5, color="0.6", lw=0.8, ls=":")
        ax.grid(alpha=0.3)
    axes[-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(os.fspath(path), format="png")
    return os.fspath(path)

"""The DP audit's report: a Markdown table and the classic audit plot.

Design notes: inputs are the JSON-ready entries of `experiments.dp_audit` (one per
(setting, attack): `lira_jax.dp_audit.audit_scores`'s dict plus ``setting``, ``attack``,
``noise_multiplier``), so both can be redrawn from a saved ``dp_audit.json``. The plot
draws on its own Agg `Figure` (no pyplot), like the other report modules: x is the
accountant's ε, y the empirical ε lower bounds (multi-model: filled markers; one-run max:
open markers), one colour per attack, with the line y = x above which a bound is a
violation. Both axes are symlog (linear below 0.1, so a bound of 0 is drawn) on the same
scale: the accountant's ε spans orders of magnitude over a σ sweep and the bounds sit far
below it. The non-private run (no accountant ε) sits at the right edge, at "∞".
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["audit_table", "plot_audit"]

_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


def _num(value, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}"


def audit_table(entries: Sequence[dict]) -> str:
    """One Markdown row per (setting, attack): σ, the accountant's ε, every lower bound,
    TPR at 1 % and 0.1 % FPR, the AUC, the pair counts and the violation flag."""
    if not entries:
        raise ValueError("entries is empty: nothing to tabulate.")
    head = [
        "setting",
        "σ",
        "attack",
        "accountant ε",
        "ε LB multi-model",
        "ε LB one-run mean / max",
        "ε LB one-run f-DP mean / max",
        "TPR@1%",
        "TPR@0.1%",
        "AUC",
        "IN / OUT pairs",
        "violation",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in entries:
        if e.get("undefined"):
            cells = [e["setting"], _num(e.get("noise_multiplier")), e["attack"]]
            cells += [f"undefined: {e['reason']}"] + ["—"] * (len(head) - 4)
            lines.append("| " + " | ".join(cells) + " |")
            continue
        sigma = e.get("noise_multiplier")
        cells = [
            e["setting"],
            "none" if sigma is None else f"{sigma:g}",
            e["attack"],
            "— (non-private)" if e["accountant_epsilon"] is None else _num(e["accountant_epsilon"]),
            _num(e["epsilon_lower_multi_model"]),
            f"{_num(e['epsilon_lower_one_run_mean'])} / {_num(e['epsilon_lower_one_run_max'])}",
            f"{_num(e['epsilon_lower_one_run_fdp_mean'])} / "
            f"{_num(e['epsilon_lower_one_run_fdp_max'])}",
            _num(e["tpr_at_fpr"].get("0.01"), 3),
            _num(e["tpr_at_fpr"].get("0.001"), 3),
            _num(e["auc"], 3),
            f"{e['num_in']} / {e['num_out']}",
            f"**VIOLATION** ({', '.join(e['violations'])})" if e["violation"] else "no",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    first = next(e for e in entries if not e.get("undefined"))
    lines.append("")
    lines.append(
        f"ε lower bounds at confidence {1 - first['significance']:g}, δ = {first['delta']:g}, "
        f"{first['num_canaries']} audited examples × {first['num_targets']} targets "
        "(jax-privacy's CanaryScoreAuditor). multi-model: Clopper–Pearson over all "
        "thresholds, every (target, canary) pair a trial; one-run: Steinke et al. 2023 per "
        "target (mean of the targets' bounds; max at significance / targets, a bound itself); "
        "f-DP: Mahloujifar et al. 2024, which assumes a Gaussian trade-off curve (never "
        "counted as a violation). violation: a multi-model or one-run max bound above the "
        "accountant's ε."
    )
    return "\n".join(lines) + "\n"


def plot_audit(entries: Sequence[dict], path: str | os.PathLike, title: str = "DP audit") -> str:
    """Writes empirical ε lower bounds against the accountant's ε to a PNG.

    Args:
      entries: as in `audit_table` (undefined entries are skipped).
      path: output PNG; its parent must exist.
      title: plot title.

    Returns:
      The path written, as a string.
    """
    rows = [e for e in entries if not e.get("undefined")]
    if not rows:
        raise ValueError("no defined entry: nothing to plot.")
    finite = [e["accountant_epsilon"] for e in rows if e["accountant_epsilon"] is not None]
    bounds = [
        e[k]
        for e in rows
        for k in ("epsilon_lower_multi_model", "epsilon_lower_one_run_max")
        if e.get(k) is not None
    ]
    top = max(finite + [max(bounds, default=0.0), 1.0])
    inf_x = 2.0 * top
    fig = Figure(figsize=(6.0, 4.6), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot([0, top], [0, top], color="k", lw=1.0, label="y = x (accountant's ε)")
    attacks = list(dict.fromkeys(e["attack"] for e in rows))
    for i, attack in enumerate(attacks):
        color = _COLORS[i % len(_COLORS)]
        mine = [e for e in rows if e["attack"] == attack]
        # Attacks side by side around their setting's ε (a few percent apart).
        shift = 1.0 + 0.05 * (i - (len(attacks) - 1) / 2)
        x = [
            shift * (inf_x if e["accountant_epsilon"] is None else e["accountant_epsilon"])
            for e in mine
        ]
        ax.scatter(
            x,
            [e["epsilon_lower_multi_model"] for e in mine],
            color=color,
            marker="o",
            label=f"{attack}: multi-model",
            zorder=3,
        )
        one = [(xi, e["epsilon_lower_one_run_max"]) for xi, e in zip(x, mine, strict=True)]
        one = [(a, b) for a, b in one if b is not None]
        if one:
            ax.scatter(
                *zip(*one, strict=True),
                facecolors="none",
                edgecolors=color,
                marker="s",
                label=f"{attack}: one-run (max)",
                zorder=3,
            )
    linthresh = 0.1
    ax.set_xscale("symlog", linthresh=linthresh)
    ax.set_yscale("symlog", linthresh=linthresh)
    ax.minorticks_off()
    decades = [0.0] + [10.0**k for k in range(-1, int(math.floor(math.log10(top))) + 1)]
    ticks, labels = list(decades), [f"{t:g}" for t in decades]
    if any(e["accountant_epsilon"] is None for e in rows):
        ax.axvline(inf_x, color="grey", lw=0.6, ls=":")
        ticks.append(inf_x)
        labels.append("∞\n(non-private)")
    ax.set_xticks(ticks)
    ax.set_xticklabels(labels)
    ax.set_yticks(decades)
    ax.set_yticklabels([f"{t:g}" for t in decades])
    ax.set_xlim(0, 1.3 * inf_x)
    ax.set_ylim(0, 1.3 * inf_x)
    ax.set_xlabel("accountant's ε (theoretical)")
    ax.set_ylabel("empirical ε lower bound")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(os.fspath(path), format="png")
    return os.fspath(path)

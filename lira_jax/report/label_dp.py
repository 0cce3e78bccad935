"""The label-DP sweep's report: a Markdown table and a plot of BLIA success against ε.

Design notes: inputs are the JSON-ready entries of `experiments.blia` (one per ε, each
`lira_jax.attacks.blia.evaluate`'s dict plus the sweep's fields), so both can be redrawn
from a saved ``blia.json``. ε is a float or the string "inf" (label-DP off). The plot draws
on its own Agg `Figure` (no pyplot), like the other report modules: ε on a log axis
(symlog when ε = 0 is in the sweep) with "inf" one step right of the largest finite ε, the
measured successes with their intervals, the OUT-pair controls, chance, and the label-DP
bound e^ε / (1 + e^ε) as a curve (each entry's own bound, which DP-SGD can lower, as a
marker).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["blia_table", "epsilon_value", "plot_blia"]


def epsilon_value(epsilon: float | str | None) -> float:
    """An entry's ε as a float ("inf" and None: inf)."""
    if epsilon is None or epsilon == "inf":
        return math.inf
    return float(epsilon)


def _num(value, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}"


def _rate(part: dict) -> str:
    if part.get("success") is None:
        return "— (no pairs)"
    lo, hi = part["interval"]
    return f"{part['success']:.3f} [{lo:.3f}, {hi:.3f}]"


def blia_table(entries: Sequence[dict]) -> str:
    """One Markdown row per ε: the bound, both attacks' success with their intervals, the
    controls, ε̂ of each attack, DP-SGD's ε (if any), the violation flag, and accuracies.

    Args:
      entries: `experiments.blia` entries (keys ``epsilon``, ``bound``, ``confidence``,
        ``log_loss_margin``, ``epsilon_hat``, ``dp_epsilon``, ``violation``, and optionally
        ``train_accuracy`` / ``test_accuracy``).
    """
    if not entries:
        raise ValueError("entries is empty: nothing to tabulate.")
    head = [
        "ε (label-DP)",
        "bound",
        "confidence success [95% CI]",
        "control",
        "margin success [95% CI]",
        "coverage",
        "margin control",
        "ε̂ conf / margin",
        "ε̂ auditor conf / margin",
        "DP-SGD ε",
        "violation",
        "train / test acc",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in entries:
        conf, marg, hat = e["confidence"], e["log_loss_margin"], e["epsilon_hat"]
        acc = (
            f"{e['train_accuracy']:.3f} / {e['test_accuracy']:.3f}"
            if e.get("train_accuracy") is not None
            else "—"
        )
        cells = [
            _num(epsilon_value(e["epsilon"]), 2),
            _num(e["bound"], 4),
            _rate(conf),
            _num(conf.get("control_success")),
            _rate(marg),
            _num(marg.get("coverage"), 2),
            _num(marg.get("control_success")),
            f"{_num(hat['confidence'], 2)} / {_num(hat['log_loss_margin'], 2)}",
            " / ".join(
                _num(e.get("audit", {}).get(r, {}).get("epsilon_hat_auditor"), 2)
                for r in ("confidence", "log_loss_margin")
            ),
            _num(e.get("dp_epsilon"), 2),
            "**VIOLATION**" if e["violation"] else "no",
            acc,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    conf_pairs = sorted({e["confidence"]["num_pairs"] for e in entries})
    lines.append("")
    lines.append(
        f"Success over (model, canary) pairs with the canary IN ({', '.join(map(str, conf_pairs))} "
        "pairs per ε for the confidence rule; the margin rule decides the `coverage` fraction "
        "of them); control: the same rule on OUT pairs (chance 0.5). bound: the largest "
        "success any attack can have under the run's label-DP (and DP-SGD) guarantee. ε̂: "
        "log(s / (1 − s)) from the 95 % lower end s (0: no evidence against any ε). "
        "ε̂ auditor: jax-privacy's Clopper–Pearson bound log(TPR / FPR) on the rule's "
        "decisions, label 1 against label 0 (95 %). violation: a 99.9 % lower end above the "
        "bound, or the auditor's 99.9 % bound above the claimed ε."
    )
    return "\n".join(lines) + "\n"


def _positions(eps: np.ndarray) -> tuple[np.ndarray, float | None]:
    """x positions: finite ε as they are, inf one (log) step right of the largest."""
    finite = eps[np.isfinite(eps)]
    top = float(finite.max()) if finite.size else 1.0
    inf_x = max(2.0 * top, 1.0) if np.isinf(eps).any() else None
    return np.where(np.isinf(eps), inf_x if inf_x is not None else 0.0, eps), inf_x


def plot_blia(
    entries: Sequence[dict], path: str | os.PathLike, title: str = "Label inference vs ε"
) -> str:
    """Writes success vs ε (both attacks, controls, chance, the bound) to a PNG.

    Args:
      entries: as in `blia_table` (needs ``epsilon``, ``bound``, ``confidence`` and
        ``log_loss_margin`` with ``success``, ``interval``, ``control_success``).
      path: output PNG; its parent must exist.
      title: plot title.

    Returns:
      The path written, as a string.
    """
    if not entries:
        raise ValueError("entries is empty: nothing to plot.")
    eps = np.array([epsilon_value(e["epsilon"]) for e in entries])
    x, inf_x = _positions(eps)
    fig = Figure(figsize=(6.0, 4.2), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    finite = eps[np.isfinite(eps)]
    hi = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    positive = finite[finite > 0]
    lo = float(positive.min()) / 2 if positive.size else hi / 4
    grid = np.geomspace(lo, hi, 200)
    if (finite == 0).any():
        grid = np.concatenate([[0.0], np.linspace(0.0, lo, 20)[1:], grid])
    ax.plot(grid, 1.0 / (1.0 + np.exp(-grid)), color="k", lw=1.2, label="label-DP bound")
    if inf_x is not None:
        ax.plot([hi, inf_x], [1.0 / (1.0 + math.exp(-hi)), 1.0], color="k", lw=1.2, ls=":")
    ax.scatter(x, [e["bound"] for e in entries], marker="_", s=200, color="k", zorder=3)
    ax.axhline(0.5, color="grey", lw=0.8, ls="--", label="chance")
    for name, key, color, shift in (
        ("confidence", "confidence", "tab:blue", 0.97),
        ("log-loss margin", "log_loss_margin", "tab:orange", 1.03),
    ):
        rows = [(xi, e[key]) for xi, e in zip(x, entries, strict=True)]
        rows = [(xi, p) for xi, p in rows if p.get("success") is not None]
        if not rows:
            continue
        xs = np.array([xi for xi, _ in rows]) * shift
        ys = np.array([p["success"] for _, p in rows])
        down = ys - np.array([p["interval"][0] for _, p in rows])
        up = np.array([p["interval"][1] for _, p in rows]) - ys
        ax.errorbar(xs, ys, yerr=[down, up], fmt="o", color=color, capsize=3, label=name)
        ctrl = [(xi * shift, p.get("control_success")) for xi, p in rows]
        ctrl = [(a, b) for a, b in ctrl if b is not None]
        if ctrl:
            ax.scatter(
                *zip(*ctrl, strict=True),
                marker="o",
                facecolors="none",
                edgecolors=color,
                label=f"{name} control (OUT)",
            )
    if (finite == 0).any():
        ax.set_xscale("symlog", linthresh=lo)
    else:
        ax.set_xscale("log")
    ax.minorticks_off()
    ticks = sorted(set(x.tolist()))
    ax.set_xticks(ticks)
    ax.set_xticklabels(["∞" if inf_x is not None and t == inf_x else f"{t:g}" for t in ticks])
    ax.set_xlabel("label-DP ε (randomized response)")
    ax.set_ylabel("label inference success (IN canaries)")
    ax.set_ylim(0.4, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(os.fspath(path), format="png")
    return os.fspath(path)

"""Markdown and a plot of an adaptive shadow-model budget (`shadow_budget.adaptive_audit`).

Inputs are the JSON-serialisable result (after `sample_complexity.to_jsonable`), so both can
be redrawn from a saved ``results/budget.json``.
"""

from __future__ import annotations

import os

import numpy as np

from lira_jax.report.curves import _figure, _save
from lira_jax.report.tables import _fmt, _fpr_label

__all__ = ["budget_markdown", "plot_budget"]


def _metric_cells(entry: dict, levels: list[str]) -> list[str]:
    ci = entry.get("ci") or {}
    cells = [_fmt(entry["auc"], ci.get("auc"), False)]
    for lv in levels:
        cells.append(_fmt(entry["tpr_at_fpr"][lv], (ci.get("tpr_at_fpr") or {}).get(lv), True))
    return cells


def _row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _num(value, digits: int = 1) -> str:
    return "inf" if value is None else f"{value:.{digits}f}"


def _models(value) -> str:
    return "n/a" if value is None else str(value)


def budget_markdown(result: dict) -> str:
    """The run's tables: the checks, the comparison with the full budget, models needed."""
    s = result["settings"]
    levels = [str(lv) for lv in sorted({*s["fpr_levels"], s["at_fpr"]}, reverse=True)]
    at = str(s["at_fpr"])
    sel = result["selection"]
    lines = [
        "# Adaptive shadow-model budget",
        "",
        f"LiRA online, fixed variance; keep rule `pairs`. Stop when the stopping targets' "
        f"TPR at FPR {_fpr_label(at)} is >= {s['target_tpr']:g} and its {100 * s['level']:g}% "
        f"interval moved <= {s['tolerance']:g} since the previous check; at most "
        f"{s['max_models']} models. Pilot {s['pilot_models']} models, steps of "
        f"{s['step_models']}.",
        "",
        f"Selection ({sel['rule']}, from the pilot only): {len(sel['indices'])} examples; "
        f"pilot memorization of the selected: median {np.median(sel['memorization']):.2f} "
        f"(lower bounds {min(sel['memorization_lo']):.2f}–{max(sel['memorization_lo']):.2f}).",
        "",
    ]
    if "models_used" in result:
        lines.append(
            f"**Stopped at {result['models_used']} models ({result['stop_reason']})**"
            + (f"; full budget {result['full_models']} models." if "full" in result else ".")
        )
        lines.append("")
    head = ["models", f"stopping TPR@{_fpr_label(at)}", "moved"]
    head += [f"selected {h}" for h in ("AUC", *(f"TPR@{_fpr_label(lv)}" for lv in levels))]
    head += [f"all {h}" for h in ("AUC", *(f"TPR@{_fpr_label(lv)}" for lv in levels))]
    lines += [_row(head), "|" + "---:|" * len(head)]
    for c in result["checks"]:
        d = c["decision"]
        mark = " (stop)" if d["stop"] else ""
        lines.append(
            _row(
                [
                    f"{c['num_models']}{mark}",
                    _fmt(d["tpr"], d["interval"], True),
                    "–" if d["moved"] is None else f"{d['moved']:.3f}",
                    *_metric_cells(c["selected"], levels),
                    *_metric_cells(c["all"], levels),
                ]
            )
        )
    if result["checks"]:
        c0, c1 = result["checks"][0], result["checks"][-1]
        parts = [
            f"{name} {c0[key]['num_targets']}–{c1[key]['num_targets']} targets × "
            f"{c0[key]['num_examples']} examples"
            for key, name in (("stopping", "stopping"), ("selected", "selected"), ("all", "all"))
        ]
        lines += ["", "Scores pooled per check: " + "; ".join(parts) + "."]
    if "full" in result:
        stop = result["checks"][-1]
        full = result["full"]
        lines += [
            "",
            "## Against the full budget",
            "",
            _row(
                ["", "models", "targets × examples", "AUC"]
                + [f"TPR@{_fpr_label(lv)}" for lv in levels]
            ),
            "|---|---:|---:|---:|" + "---:|" * len(levels),
        ]
        for name, entry, models in (
            ("selected, adaptive stop", stop["selected"], result["models_used"]),
            ("selected, full budget", full["selected"], result["full_models"]),
            ("all, adaptive stop", stop["all"], result["models_used"]),
            ("all, full budget", full["all"], result["full_models"]),
        ):
            shape = f"{entry['num_targets']} × {entry['num_examples']}"
            lines.append(_row([name, models, shape, *_metric_cells(entry, levels)]))
        kept = stop["selected"]["tpr_at_fpr"][at]
        interval = full["selected"]["ci"]["tpr_at_fpr"][at]
        inside = interval is not None and interval[0] <= kept <= interval[1]
        full_cell = _fmt(full["selected"]["tpr_at_fpr"][at], interval, True)
        lines += [
            "",
            f"Selected TPR@{_fpr_label(at)} at the stop {100 * kept:.2f}% with "
            f"{result['models_used']} of {result['full_models']} models: "
            + ("within" if inside else "**not** within")
            + f" the full budget's interval {full_cell}.",
        ]
    pred = sel["prediction"]
    lines += [
        "",
        "## Models needed (shadow models per side → models to train: 2k + 2)",
        "",
        _row(
            ["", "predicted from the pilot", "realised by subsampling at the stop"]
            + (["realised at the full budget"] if "realised_full" in result else [])
            + ["adaptive stop"]
        ),
        "|---|---:|---:|" + ("---:|" if "realised_full" in result else "") + "---:|",
    ]
    for group in ("selected", "all"):
        p = pred[group]
        cells = [
            group,
            f"{_num(p['per_side'])} [{_num(p['per_side_lo'])}, {_num(p['per_side_hi'])}] → "
            f"{_models(p['models'])}",
        ]
        for key in ("realised", "realised_full"):
            if key in result:
                r = result[key][group]
                if r["per_side"] is None:
                    k = r.get("at_least")
                    cells.append(f">= {k} → >= {2 * k + 2}" if k else "n/a")
                else:
                    cells.append(f"{r['per_side']} → {r['models']}")
        cells.append(str(result.get("models_used", "–")) if group == "selected" else "–")
        lines.append(_row(cells))
    if "realised" in result:
        lines += [
            "",
            f"Realised: the first k whose median AUC over subsampled draws reaches "
            f"{result['realised']['fraction']:g} of the attack's all-models advantage "
            "(non-pilot targets); '>= k': not reached below the largest k measured there.",
        ]
    return "\n".join(lines) + "\n"


def _series(checks: list[dict], key: str, at: str) -> tuple[np.ndarray, ...]:
    vals, lo, hi = [], [], []
    for c in checks:
        entry = c[key]
        vals.append(entry["tpr_at_fpr"][at])
        interval = entry["ci"]["tpr_at_fpr"][at]
        lo.append(np.nan if interval is None else interval[0])
        hi.append(np.nan if interval is None else interval[1])
    return np.array(vals, float), np.array(lo, float), np.array(hi, float)


def plot_budget(result: dict, path: str | os.PathLike) -> str:
    """TPR at the rule's FPR against models trained: stopping, selected and all examples
    (bands: intervals), the target, the stop and the full budget's points."""
    s = result["settings"]
    at = str(s["at_fpr"])
    checks = result["checks"]
    fig, ax = _figure((6.2, 4.2))
    ks = np.array([c["num_models"] for c in checks], float)
    for i, (key, label) in enumerate(
        (
            ("stopping", "selected, stopping targets"),
            ("selected", "selected, evaluation targets"),
            ("all", "all examples, all targets"),
        )
    ):
        v, lo, hi = _series(checks, key, at)
        ax.plot(ks, v, marker="o", ms=3, color=f"C{i}", label=label)
        ax.fill_between(ks, lo, hi, color=f"C{i}", alpha=0.15, lw=0)
    ax.axhline(s["target_tpr"], color="black", ls=":", lw=1, label=f"target {s['target_tpr']:g}")
    if "models_used" in result:
        ax.axvline(result["models_used"], color="grey", ls="--", lw=1, label="stop")
    if "full" in result:
        for i, key in ((1, "selected"), (2, "all")):
            entry = result["full"][key]
            interval = entry["ci"]["tpr_at_fpr"][at]
            err = None
            if interval is not None:
                v = entry["tpr_at_fpr"][at]
                err = [[v - interval[0]], [interval[1] - v]]
            ax.errorbar(
                [result["full_models"]],
                [entry["tpr_at_fpr"][at]],
                yerr=err,
                fmt="s",
                color=f"C{i}",
                capsize=3,
            )
    ax.set_xlabel("models trained")
    ax.set_ylabel(f"TPR at FPR {_fpr_label(at)}")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(
        "Adaptive budget: LiRA online, fixed variance (squares: full budget)", fontsize="small"
    )
    ax.legend(fontsize="small")
    ax.grid(True, alpha=0.3)
    return _save(fig, path)

"""Markdown tables of attack results (the dicts produced by `metrics.summarize`)."""

from __future__ import annotations

__all__ = ["markdown_table"]


def _fpr_label(level: str) -> str:
    return f"{float(level) * 100:g}%"


def markdown_table(results: dict[str, dict]) -> str:
    """Formats attack results as a Markdown table.

    Args:
      results: attack name -> `metrics.summarize(...)` dict (optionally with "num_targets").

    Returns:
      A Markdown table, one row per attack: AUC, balanced accuracy and TPR at each FPR level
      of the first result ("n/a" where the level is below 1/num_negatives), followed by a
      line stating the numbers of positives and negatives.
    """
    if not results:
        raise ValueError("results is empty: no attack to tabulate.")
    levels = list(next(iter(results.values()))["tpr_at_fpr"])
    header = ["attack", "AUC", "balanced acc", *(f"TPR@{_fpr_label(lv)}" for lv in levels)]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    for name, res in results.items():
        out_of_reach = set(res.get("fpr_out_of_reach", ()))
        tprs = [
            "n/a" if lv in out_of_reach else f"{100 * res['tpr_at_fpr'][lv]:.2f}%" for lv in levels
        ]
        row = [name, f"{res['auc']:.4f}", f"{res['balanced_accuracy']:.4f}", *tprs]
        lines.append("| " + " | ".join(row) + " |")

    counts = {
        (r["num_positives"], r["num_negatives"], r.get("num_targets")) for r in results.values()
    }
    footers = []
    for pos, neg, targets in sorted(counts, key=str):
        text = f"{pos} positives (members), {neg} negatives (non-members)"
        if targets is not None:
            text += f", pooled over {targets} target model(s)"
        footers.append(f"{text}; FPRs below 1/{neg} = {1 / neg:.2g} are out of reach (n/a).")
    return "\n".join(lines) + "\n\n" + "\n".join(footers) + "\n"

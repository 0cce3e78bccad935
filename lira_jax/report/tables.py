"""Markdown tables of attack results (the dicts produced by `attacks.evaluate_signals`)."""

from __future__ import annotations

__all__ = ["markdown_table"]


def _fpr_label(level: str) -> str:
    return f"{float(level) * 100:g}%"


def _fmt(value: float, interval, percent: bool) -> str:
    """ "0.7123" or "0.7123 [0.7001, 0.7240]"; percentages as "5.12% [4.80, 5.44]"."""
    scale, digits, unit = (100.0, 2, "%") if percent else (1.0, 4, "")
    text = f"{scale * value:.{digits}f}{unit}"
    if interval:
        lo, hi = interval
        text += f" [{scale * lo:.{digits}f}, {scale * hi:.{digits}f}]"
    return text


def _cells(res: dict, levels: list[str]) -> list[str]:
    """AUC, balanced accuracy and TPR cells of one (attack or group) result."""
    if res.get("undefined"):
        return ["undefined"] * (2 + len(levels))
    ci = res.get("ci") or {}
    out_of_reach = set(res.get("fpr_out_of_reach", ()))
    tprs = [
        "n/a"
        if lv in out_of_reach
        else _fmt(res["tpr_at_fpr"][lv], (ci.get("tpr_at_fpr") or {}).get(lv), True)
        for lv in levels
    ]
    return [
        _fmt(res["auc"], ci.get("auc"), False),
        _fmt(res["balanced_accuracy"], ci.get("balanced_accuracy"), False),
        *tprs,
    ]


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def markdown_table(results: dict[str, dict]) -> str:
    """Formats attack results as Markdown.

    Args:
      results: attack name -> result dict: `metrics.summarize(...)` fields, optionally
        "num_targets", "ci" (bootstrap intervals), "groups" ({group: result dict}),
        "operating_point", or {"undefined": True, "reason": ...}.

    Returns:
      A Markdown table, one row per attack (AUC, balanced accuracy, TPR at each FPR level
      of the first defined result; "n/a" where the level is below 1/num_negatives; "[lo, hi]"
      intervals when present), followed by one row per group of that attack ("name · group";
      the group "all" is the attack's own row),
      lines stating the numbers of positives and negatives (and per group), the reasons of
      undefined entries, and a table of the attacks' own fixed-threshold operating points
      when any attack has one.

    Raises:
      ValueError: if results is empty or no attack is defined.
    """
    if not results:
        raise ValueError("results is empty: no attack to tabulate.")
    defined = [r for r in results.values() if not r.get("undefined")]
    if not defined:
        raise ValueError("every attack in results is undefined: nothing to tabulate.")
    levels = list(defined[0]["tpr_at_fpr"])
    header = ["attack", "AUC", "balanced acc", *(f"TPR@{_fpr_label(lv)}" for lv in levels)]
    lines = [_row(header), "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    notes, group_counts = [], {}
    ci_spec = None
    for name, res in results.items():
        lines.append(_row([name, *_cells(res, levels)]))
        if res.get("undefined"):
            notes.append(f"{name}: undefined — {res.get('reason', 'no reason given')}")
            continue
        if res.get("ci"):
            ci_spec = (res["ci"]["level"], res["ci"]["num_bootstrap"])
        for group, sub in res.get("groups", {}).items():
            if group == "all":  # the attack's own row
                continue
            lines.append(_row([f"{name} · {group}", *_cells(sub, levels)]))
            if sub.get("undefined"):
                notes.append(f"{name} · {group}: undefined — {sub.get('reason', '')}")
            else:
                group_counts.setdefault(group, (sub["num_positives"], sub["num_negatives"]))

    counts = {(r["num_positives"], r["num_negatives"], r.get("num_targets")) for r in defined}
    footers = []
    for pos, neg, targets in sorted(counts, key=str):
        text = f"{pos} positives (members), {neg} negatives (non-members)"
        if targets is not None:
            text += f", pooled over {targets} target model(s)"
        footers.append(f"{text}; FPRs below 1/{neg} = {1 / neg:.2g} are out of reach (n/a).")
    for group, (pos, neg) in group_counts.items():
        footers.append(
            f"Group {group}: {pos} positives, {neg} negatives; FPRs below {1 / neg:.2g} are n/a."
        )
    if ci_spec is not None:
        level, num = ci_spec
        footers.append(
            f"[lo, hi]: {100 * level:g}% bootstrap percentile intervals over {num} resamples "
            "of the examples."
        )
    text = "\n".join(lines) + "\n\n" + "\n".join(footers) + "\n"
    if notes:
        text += "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    text += _operating_points(results)
    return text


def _operating_points(results: dict[str, dict]) -> str:
    """Table of the attacks' own decision rules (empty string if none has one)."""
    rows = []
    for name, res in results.items():
        points = [(name, res.get("operating_point"))]
        points += [
            (f"{name} · {g}", sub.get("operating_point"))
            for g, sub in res.get("groups", {}).items()
            if g != "all"
        ]
        for label, op in points:
            if op is None:
                continue
            ci = op.get("ci") or {}
            rows.append(
                _row(
                    [
                        label,
                        _fmt(op["tpr"], ci.get("tpr"), True),
                        _fmt(op["fpr"], ci.get("fpr"), True),
                        _fmt(op["balanced_accuracy"], ci.get("balanced_accuracy"), False),
                    ]
                )
            )
    if not rows:
        return ""
    head = [
        "",
        "Fixed-threshold operating points (each attack's own decision rule):",
        "",
        _row(["attack", "TPR", "FPR", "balanced acc"]),
        "|---|---:|---:|---:|",
    ]
    return "\n".join(head + rows) + "\n"

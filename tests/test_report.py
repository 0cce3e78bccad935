"""Tests for lira_jax.report: Markdown table and ROC plot."""

import numpy as np

from lira_jax import metrics
from lira_jax.report import markdown_table, plot_roc


def _results():
    rng = np.random.default_rng(0)
    truth = np.r_[np.ones(300, bool), np.zeros(500, bool)]
    strong = rng.normal(size=truth.size) + 2 * truth
    weak = rng.normal(size=truth.size) + 0.3 * truth
    results = {
        "lira_online": {**metrics.summarize(strong, truth), "num_targets": 2},
        "global_threshold": {**metrics.summarize(weak, truth), "num_targets": 2},
    }
    curves = {
        "lira_online": metrics.roc_curve(strong, truth),
        "global_threshold": metrics.roc_curve(weak, truth),
    }
    return results, curves


def test_markdown_table():
    results, _ = _results()
    table = markdown_table(results)
    lines = table.splitlines()
    assert "TPR@1%" in lines[0] and "TPR@0.001%" in lines[0] and "AUC" in lines[0]
    row = next(line for line in lines if line.startswith("| lira_online"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == f"{results['lira_online']['auc']:.4f}"
    assert cells[3] == f"{100 * results['lira_online']['tpr_at_fpr']['0.01']:.2f}%"
    # 500 negatives: FPR 1e-3 and below are out of reach.
    assert cells[4:] == ["n/a", "n/a", "n/a"]
    assert any(line.startswith("| global_threshold") for line in lines)
    assert "300 positives" in table and "500 negatives" in table


def test_plot_roc_writes_png(tmp_path):
    _, curves = _results()
    path = plot_roc(curves, tmp_path / "roc.png", title="test")
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_markdown_table_with_intervals_groups_undefined_and_operating_points():
    rng = np.random.default_rng(1)
    truth = np.r_[np.ones(300, bool), np.zeros(500, bool)]
    scores = rng.normal(size=truth.size) + truth
    group = np.arange(truth.size) % 2 == 0
    res = {**metrics.summarize(scores, truth, num_bootstrap=50), "num_targets": 1}
    res["operating_point"] = {**metrics.operating_point(scores > 0.5, truth), "ci": None}
    res["groups"] = {
        "even": metrics.summarize(scores[group], truth[group], num_bootstrap=50),
        "none": {"undefined": True, "reason": "no example belongs to this group"},
    }
    results = {
        "yeom": res,
        "lira_online": {"undefined": True, "reason": "3 of 800 examples have no OUT shadow"},
    }
    table = markdown_table(results)
    lines = table.splitlines()
    row = next(line for line in lines if line.startswith("| yeom |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    lo, hi = res["ci"]["auc"]
    assert cells[1] == f"{res['auc']:.4f} [{lo:.4f}, {hi:.4f}]"
    tlo, thi = res["ci"]["tpr_at_fpr"]["0.01"]
    assert cells[3] == f"{100 * res['tpr_at_fpr']['0.01']:.2f}% [{100 * tlo:.2f}, {100 * thi:.2f}]"
    assert any(line.startswith("| yeom · even |") for line in lines)
    assert any(line.startswith("| yeom · none | undefined") for line in lines)
    assert any(line.startswith("| lira_online | undefined") for line in lines)
    assert "lira_online: undefined — 3 of 800 examples have no OUT shadow" in table
    assert "95% bootstrap percentile intervals over 50 resamples" in table
    assert "Group even: " in table
    op_row = next(
        line for line in lines if line.startswith("| yeom |") and "%" in line and line != row
    )
    assert f"{100 * res['operating_point']['tpr']:.2f}%" in op_row
    # Older results without intervals keep the old format (see test_markdown_table).
    assert markdown_table({"x": {**metrics.summarize(scores, truth)}}).count("[") == 0


def test_plot_roc_many_long_curves(tmp_path):
    rng = np.random.default_rng(0)
    truth = rng.random(50_000) < 0.5
    curves = {
        f"attack_{i}": metrics.roc_curve(rng.normal(size=truth.size) + 0.1 * i * truth, truth)
        for i in range(12)
    }
    path = plot_roc(curves, tmp_path / "many.png")
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"

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

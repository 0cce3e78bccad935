"""The mixtures experiment end to end on a tiny config."""

import json

import numpy as np
import pytest

from experiments import motivation, train_shadows
from lira_jax import store as store_lib

TINY = dict(max_train=600, arch="cnn16", num_models=6, epochs=2, batch_size=64)


def test_settings_train_random_before_singletons():
    assert motivation.settings(["singletons", "none"], ["aug", "digits"]) == [
        ("none", "none", None),
        ("aug_random", "random", "aug"),
        ("aug_singletons", "singletons", "aug"),
        ("digits_random", "random", "digits"),
        ("digits_singletons", "singletons", "digits"),
    ]
    with pytest.raises(ValueError, match="--mixtures"):
        motivation.settings(["rnd"], ["aug"])


def test_motivation_end_to_end(tmp_path):
    base = train_shadows.make_config("digits", **TINY)
    out = motivation.motivation(
        base,
        tmp_path,
        ["none", "singletons"],
        ["aug"],
        ["yeom", "lira_online"],
        mixture_params={"ood_size": 100, "singleton_threshold": 0.2},
        num_bootstrap=5,
        log=lambda _: None,
    )
    assert list(out["settings"]) == ["none", "aug_random", "aug_singletons"]
    saved = json.loads((tmp_path / "results" / "motivation.json").read_text())
    assert saved["settings"] == json.loads(json.dumps(out["settings"]))
    none, rnd = out["settings"]["none"], out["settings"]["aug_random"]
    assert none["attacks"]["yeom"]["under_represented"] is None  # no groups without a mixture
    cell = rnd["attacks"]["lira_online"]["under_represented"]
    store = store_lib.open_store(tmp_path / "aug_random" / "store")
    assert cell["num_examples"] == 100 == int((store.groups() == 1).sum())
    # Pooled over the 6 targets: each example is a non-member of 3 of them.
    assert cell["num_negatives"] == 300 and rnd["num_negatives_under"] == 300
    assert 0.0 <= cell["auc"] <= 1.0 and len(cell["auc_interval"]) == 2
    single = store_lib.open_store(tmp_path / "aug_singletons" / "store")
    chosen = single.source_index()[single.groups() == 1]
    assert np.isin(chosen, store.source_index()[store.groups() == 1]).all()
    corr = out["ood"]["aug_random"]
    assert set(corr) == {"all", "under_represented"}
    assert set(corr["all"]["msp"]) == {"privacy_score", "memorization"}
    table = (tmp_path / "results" / "motivation.md").read_text()
    assert "| lira_online | digits+aug (singletons) |" in table
    assert (tmp_path / "results" / "ood_aug_random_msp.png").stat().st_size > 0
    # A re-run trains nothing and gives the same table.
    again = motivation.motivation(
        base, tmp_path, ["none", "singletons"], ["aug"], ["yeom", "lira_online"],
        mixture_params={"ood_size": 100, "singleton_threshold": 0.2}, num_bootstrap=5,
        log=lambda _: None,
    )  # fmt: skip
    assert again["settings"] == out["settings"]

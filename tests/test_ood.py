"""OOD scores: MSP and energy formulas, OUT-model averaging, Spearman correlations."""

import numpy as np
import pytest

from lira_jax import ood


def test_msp_and_energy_match_their_definitions():
    z = np.array([[2.0, 0.0, -1.0], [1000.0, 1000.0, 0.0]])
    p = np.exp(z[0]) / np.exp(z[0]).sum()
    assert ood.msp(z)[0] == pytest.approx(p.max())
    assert ood.msp(z)[1] == pytest.approx(0.5)  # stable for huge logits
    assert ood.energy(z)[0] == pytest.approx(-np.log(np.exp(z[0]).sum()))
    t = 2.0
    assert ood.energy(z, t)[0] == pytest.approx(-t * np.log(np.exp(z[0] / t).sum()))
    assert ood.energy(z)[1] == pytest.approx(-(1000 + np.log(2)))
    with pytest.raises(ValueError, match="temperature"):
        ood.energy(z, 0.0)


def test_scores_average_over_out_models_only():
    rng = np.random.default_rng(0)
    m, n, c = 6, 5, 4
    logits = rng.normal(size=(m, n, 2, c))
    keep = np.zeros((m, n), bool)
    keep[:3] = True
    keep[:, 4] = [True, False, True, False, True, False]
    spiked = logits.copy()
    spiked[keep] = 1e6 * np.eye(c)[0]  # what IN models output must not matter
    s = ood.out_model_scores(spiked, keep)
    for j in range(n):
        out = ~keep[:, j]
        assert s.num_out[j] == out.sum()
        assert s.msp[j] == pytest.approx(ood.msp(logits[out, j, 0]).mean())
        assert s.energy[j] == pytest.approx(ood.energy(logits[out, j, 0]).mean())
    keep[:, 2] = True
    with pytest.raises(ValueError, match="no OUT model"):
        ood.out_model_scores(logits, keep)


def test_correlations_are_spearman():
    x = np.arange(10.0)
    got = ood.correlations({"a": x}, {"up": x**3, "down": -x, "inf": np.r_[x[:9], np.inf]})
    assert got["a"]["up"]["spearman"] == pytest.approx(1.0)
    assert got["a"]["down"]["spearman"] == pytest.approx(-1.0)
    assert got["a"]["inf"]["spearman"] == pytest.approx(1.0) and got["a"]["inf"]["n"] == 10

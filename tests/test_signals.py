"""Tests for lira_jax.signals against direct float64 computations."""

import numpy as np
import pytest

from lira_jax import signals


def _direct(logits, labels):
    """Textbook formulas on moderate logits: softmax, then log p_y - log(1 - p_y)."""
    z = np.asarray(logits, dtype=np.float64)
    p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    p_y = np.take_along_axis(p, labels[..., None], -1)[..., 0]
    return np.log(p_y) - np.log1p(-p_y), -np.log(p_y), p.argmax(-1) == labels


def test_moderate_logits_match_direct_formula():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3.0, size=(50, 10)).astype(np.float32)
    labels = rng.integers(0, 10, size=50)
    phi_ref, ce_ref, corr_ref = _direct(logits, labels)
    phi = signals.logit_scaled_confidence(logits, labels)
    assert phi.dtype == np.float64 and phi.shape == (50,)
    np.testing.assert_allclose(phi, phi_ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(signals.cross_entropy(logits, labels), ce_ref, rtol=1e-12)
    np.testing.assert_array_equal(signals.correctness(logits, labels), corr_ref)


def test_log_softmax64():
    logits = np.array([[1000.0, 0.0, -1000.0], [1.0, 2.0, 3.0]], dtype=np.float32)
    out = signals.log_softmax64(logits)
    assert out.dtype == np.float64
    assert np.all(np.isfinite(out[1])) and np.isfinite(out[0, :2]).all()
    np.testing.assert_allclose(np.exp(out).sum(-1), 1.0)
    np.testing.assert_allclose(out[1], np.log(np.exp([1, 2, 3]) / np.exp([1, 2, 3]).sum()))
    np.testing.assert_allclose(out[0, :2], [0.0, -1000.0])


def test_extreme_logits_stay_exact():
    logits = np.array([[200.0, 0.0, 0.0], [200.0, 0.0, 0.0], [-50.0, 150.0, 150.0]])
    labels = np.array([0, 1, 0])
    # The naive formula saturates: p_y == 1 exactly, so log(1 - p_y) = -inf.
    with np.errstate(divide="ignore"):
        naive, _, _ = _direct(logits[:1], labels[:1])
    assert np.isinf(naive[0])
    phi = signals.logit_scaled_confidence(logits, labels)
    expected = [200.0 - np.log(2.0), 0.0 - np.logaddexp(200.0, 0.0), -50.0 - (150.0 + np.log(2))]
    np.testing.assert_allclose(phi, expected, rtol=1e-14)
    ce = signals.cross_entropy(logits, labels)
    assert np.all(np.isfinite(ce)) and ce[0] > 0 and ce[0] < 1e-80
    np.testing.assert_allclose(ce[1:], [200.0 + np.log1p(2 * np.exp(-200.0)), 200 + np.log(2)])


def test_store_layout_with_example_axis():
    rng = np.random.default_rng(1)
    m, n, a, c = 3, 7, 2, 5
    logits = rng.normal(size=(m, n, a, c))
    labels = rng.integers(0, c, size=n)
    phi = signals.logit_scaled_confidence(logits, labels, example_axis=1)
    assert phi.shape == (m, n, a)
    same = signals.logit_scaled_confidence(logits, labels[:, None])
    np.testing.assert_array_equal(phi, same)
    for i in range(m):
        for k in range(a):
            ref, _, _ = _direct(logits[i, :, k], labels)
            np.testing.assert_allclose(phi[i, :, k], ref, rtol=1e-10)
    assert signals.correctness(logits, labels, example_axis=-2).shape == (m, n, a)


def test_bad_labels_raise():
    logits = np.zeros((4, 3, 5))
    with pytest.raises(ValueError, match="broadcast"):
        signals.logit_scaled_confidence(logits, np.zeros(4, dtype=int))
    with pytest.raises(ValueError, match="N=4"):
        signals.cross_entropy(logits, np.zeros(3, dtype=int), example_axis=0)
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        signals.correctness(logits, np.full(3, 5))


def _direct_mentr(logits, labels):
    """Song & Mittal's formula on moderate logits, straight from the probabilities."""
    z = np.asarray(logits, dtype=np.float64)
    p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    out = []
    for row, y in zip(p, labels, strict=True):
        term = -(1 - row[y]) * np.log(row[y])
        term -= sum(row[i] * np.log(1 - row[i]) for i in range(row.size) if i != y)
        out.append(term)
    return np.array(out)


def test_modified_entropy_and_label_probability_match_direct_formulas():
    rng = np.random.default_rng(2)
    logits = rng.normal(scale=3.0, size=(80, 6))
    labels = rng.integers(0, 6, size=80)
    got = signals.modified_entropy(logits, labels)
    np.testing.assert_allclose(got, _direct_mentr(logits, labels), rtol=1e-12)
    p = signals.softmax64(logits)
    np.testing.assert_allclose(signals.label_probability(logits, labels), p[np.arange(80), labels])
    everything = signals.signal_set(logits, labels)
    np.testing.assert_allclose(everything["probs"], p, rtol=1e-12)
    np.testing.assert_allclose(everything["loss"], signals.cross_entropy(logits, labels))
    np.testing.assert_array_equal(everything["mentr"], got)
    with pytest.raises(ValueError, match="Unknown signal"):
        signals.signal_set(logits, labels, ["entropy"])


def test_modified_entropy_extreme_logits():
    logits = np.array([[0.0, 40.0, 0.0], [0.0, 800.0, 0.0], [100.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    labels = np.array([0, 0, 0, 1])
    got = signals.modified_entropy(logits, labels)
    floor = -signals.MENTR_LOG_FLOOR  # = log 1e30
    # Confidently wrong: log p_y = −40 and log(1 − p_1) = log(2 e^−40) exactly, not log 0.
    assert got[0] == pytest.approx(40.0 + (40.0 - np.log(2.0)), rel=1e-12)
    # Beyond 1e-30 both logs are floored, as in the paper.
    assert got[1] == pytest.approx(2 * floor, rel=1e-12)
    # Confidently right: Mentr ≈ (1 − p_y)(−log p_y) + Σ p_i², tiny but positive.
    assert 0 < got[2] < 1e-80
    np.testing.assert_allclose(got[3], _direct_mentr(logits[3:], labels[3:])[0])


def test_label_first_posteriors():
    probs = np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]])
    labels = np.array([2, 0])
    np.testing.assert_array_equal(
        signals.label_first_posteriors(probs, labels), [[0.3, 0.6, 0.1], [0.5, 0.3, 0.2]]
    )
    np.testing.assert_array_equal(
        signals.label_first_posteriors(probs, labels, num_features=2), [[0.3, 0.6], [0.5, 0.3]]
    )
    batch = np.broadcast_to(probs, (4, 2, 3))
    assert signals.label_first_posteriors(batch, labels, example_axis=1).shape == (4, 2, 3)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        signals.label_first_posteriors(probs, np.array([3, 0]))

"""Tests for lira_jax.train.accounting: ε equals dp-accounting's for the same events, and the
analytic Gaussian mechanism's where the answer is known in closed form."""

import math

import dp_accounting
import numpy as np
import pytest
from dp_accounting import pld, rdp
from scipy import optimize, stats

from lira_jax.train import TrainConfig, accounting


@pytest.mark.parametrize("name", ["pld", "rdp"])
def test_epsilon_equals_dp_accounting_composed_step_by_step(name):
    q, sigma, steps, delta = 0.05, 1.2, 300, 1e-5
    got = accounting.dp_sgd_privacy(
        noise_multiplier=sigma,
        sampling_probability=q,
        steps=steps,
        delta=delta,
        clip_norm=1.0,
        accountant=name,
    )
    # Independently: compose the single step `steps` times (not a SelfComposedDpEvent).
    acc = pld.PLDAccountant() if name == "pld" else rdp.RdpAccountant()
    step = dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma))
    acc.compose(step, steps)
    assert got["epsilon"] == pytest.approx(acc.get_epsilon(delta), rel=1e-6)
    assert got == {
        "accountant": name,
        "noise_multiplier": sigma,
        "clip_norm": 1.0,
        "sampling_probability": q,
        "steps": steps,
        "delta": delta,
        "epsilon": got["epsilon"],
    }


def test_full_batch_pld_matches_the_analytic_gaussian_mechanism():
    # q = 1: T Gaussian steps of noise σ compose to one Gaussian mechanism of noise σ/√T,
    # whose exact δ(ε) is Φ(−εs + 1/(2s)) − e^ε Φ(−εs − 1/(2s)) (Balle & Wang 2018).
    sigma, steps, delta = 3.0, 25, 1e-5
    s = sigma / math.sqrt(steps)
    exact = optimize.brentq(
        lambda e: (
            stats.norm.cdf(-e * s + 0.5 / s)
            - math.exp(e) * stats.norm.cdf(-e * s - 0.5 / s)
            - delta
        ),
        1e-6,
        100,
    )
    got = accounting.dp_sgd_privacy(
        noise_multiplier=sigma, sampling_probability=1.0, steps=steps, delta=delta, clip_norm=1
    )
    assert got["epsilon"] == pytest.approx(exact, rel=1e-3)
    # RDP is an upper bound: never below the exact value.
    looser = accounting.dp_sgd_privacy(
        noise_multiplier=sigma,
        sampling_probability=1.0,
        steps=steps,
        delta=delta,
        clip_norm=1,
        accountant="rdp",
    )
    assert looser["epsilon"] >= exact


def test_privacy_of_run_uses_one_over_steps_and_all_steps():
    config = TrainConfig(
        arch="logreg",
        num_classes=2,
        epochs=3,
        batch_size=32,
        augment_shift=0,
        dp_noise_multiplier=1.0,
        dp_clip_norm=0.5,
        dp_delta=1e-5,
    )
    got = accounting.privacy_of_run(config, steps_per_epoch=8)
    want = accounting.dp_sgd_privacy(
        noise_multiplier=1.0, sampling_probability=1 / 8, steps=24, delta=1e-5, clip_norm=0.5
    )
    assert got == want and np.isfinite(got["epsilon"]) and got["epsilon"] > 0
    with pytest.raises(ValueError, match="no DP-SGD"):
        accounting.privacy_of_run(TrainConfig(arch="logreg", num_classes=2), 8)


def test_no_noise_is_no_privacy_and_bad_inputs_are_named():
    kw = dict(sampling_probability=0.1, steps=10, delta=1e-5, clip_norm=1.0)
    assert accounting.dp_sgd_privacy(noise_multiplier=0.0, **kw)["epsilon"] == "inf"
    for bad, match in [
        (dict(accountant="prv"), "Unknown accountant 'prv'"),
        (dict(sampling_probability=0.0), "sampling_probability=0.0"),
        (dict(steps=0), "steps=0"),
        (dict(delta=1.0), "delta=1.0"),
        (dict(noise_multiplier=-1.0), "noise_multiplier=-1.0"),
    ]:
        args = {"noise_multiplier": 1.0, **kw, **bad}
        with pytest.raises(ValueError, match=match):
            accounting.dp_sgd_privacy(**args)

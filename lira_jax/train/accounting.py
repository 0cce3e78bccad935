"""The privacy spent by DP-SGD, from Google's `dp-accounting`.

Design notes: the engine's DP-SGD samples every IN example of a model into each step
independently with probability q (Poisson sampling) and adds Gaussian noise of standard
deviation σ·C to the sum of per-example gradients clipped to C: each step is the
`PoissonSampledDpEvent(q, GaussianDpEvent(σ))` of dp-accounting, and a run is that event
self-composed over all its steps (`SelfComposedDpEvent`). Two accountants: `pld` (privacy loss
distributions, the tighter, default) and `rdp` (Rényi DP, an upper bound that is looser by
a few tens of percent at typical settings). ε is for the add/remove-one-example relation that
dp-accounting's defaults use; it bounds what can be learned about a whole example, so about
its label too. With σ = 0 there is no privacy (ε = inf).
"""

from __future__ import annotations

import math

ACCOUNTANTS = ("pld", "rdp")


def dp_sgd_event(noise_multiplier: float, sampling_probability: float, steps: int):
    """The dp-accounting event of `steps` Poisson-sampled Gaussian steps."""
    import dp_accounting

    step = dp_accounting.PoissonSampledDpEvent(
        sampling_probability, dp_accounting.GaussianDpEvent(noise_multiplier)
    )
    return dp_accounting.SelfComposedDpEvent(step, steps)


def _accountant(name: str):
    from dp_accounting import pld, rdp

    if name == "pld":
        return pld.PLDAccountant()
    if name == "rdp":
        return rdp.RdpAccountant()
    raise ValueError(f"Unknown accountant {name!r}; choose one of {ACCOUNTANTS}.")


def dp_sgd_privacy(
    *,
    noise_multiplier: float,
    sampling_probability: float,
    steps: int,
    delta: float,
    clip_norm: float,
    accountant: str = "pld",
) -> dict:
    """ε of a DP-SGD run at δ.

    Args:
      noise_multiplier: σ >= 0.
      sampling_probability: q in (0, 1].
      steps: total DP-SGD steps T >= 1 (epochs × steps per epoch).
      delta: δ in (0, 1).
      clip_norm: C (recorded only: ε does not depend on it).
      accountant: "pld" or "rdp".

    Returns:
      {"accountant", "noise_multiplier", "clip_norm", "sampling_probability", "steps",
       "delta", "epsilon"} with JSON-ready values ("inf" for ε when σ = 0).
    """
    if accountant not in ACCOUNTANTS:
        raise ValueError(f"Unknown accountant {accountant!r}; choose one of {ACCOUNTANTS}.")
    if not (math.isfinite(noise_multiplier) and noise_multiplier >= 0):
        raise ValueError(f"noise_multiplier={noise_multiplier} must be a finite number >= 0.")
    if not 0.0 < sampling_probability <= 1.0:
        raise ValueError(f"sampling_probability={sampling_probability} must be in (0, 1].")
    if isinstance(steps, bool) or int(steps) != steps or steps < 1:
        raise ValueError(f"steps={steps} must be an int >= 1.")
    if not 0.0 < delta < 1.0:
        raise ValueError(f"delta={delta} must be in (0, 1), e.g. 1e-5.")
    if noise_multiplier == 0:
        epsilon: float | str = "inf"
    else:
        event = dp_sgd_event(noise_multiplier, sampling_probability, int(steps))
        epsilon = float(_accountant(accountant).compose(event).get_epsilon(delta))
    return {
        "accountant": accountant,
        "noise_multiplier": float(noise_multiplier),
        "clip_norm": float(clip_norm),
        "sampling_probability": float(sampling_probability),
        "steps": int(steps),
        "delta": float(delta),
        "epsilon": epsilon,
    }


def privacy_of_run(config, steps_per_epoch: int, accountant: str = "pld") -> dict:
    """`dp_sgd_privacy` of an engine run: q = 1 / steps_per_epoch, T = epochs × steps.

    Args:
      config: the run's `TrainConfig` (DP-SGD on).
      steps_per_epoch: the run's steps per epoch (`engine.steps_per_epoch(keep, batch_size)`).
      accountant: "pld" or "rdp".
    """
    from lira_jax.train import dpsgd

    if not config.dp:
        raise ValueError("This run has no DP-SGD (dp_noise_multiplier is None): no ε to report.")
    return dp_sgd_privacy(
        noise_multiplier=config.dp_noise_multiplier,
        sampling_probability=dpsgd.sampling_probability(steps_per_epoch),
        steps=config.epochs * int(steps_per_epoch),
        delta=config.dp_delta,
        clip_norm=config.dp_clip_norm,
        accountant=accountant,
    )

"""Out-of-distribution scores per example, from the models that did not train on it.

Two standard detectors, computed from the identity-query logits of each example's **OUT
models** (the shadow models whose training set did not contain it) and averaged over
them, so the score measures how atypical an example looks to a model that never saw it,
not how well it was memorized:

  * MSP (Hendrycks & Gimpel 2017): max_k softmax(z)_k; higher = more in-distribution.
  * Energy (Liu et al. 2020): E(z) = −T·logsumexp(z / T), T = 1 by default; lower = more
    in-distribution.

`correlations` gives Spearman's rank correlation of each OOD score with per-example
quantities such as the privacy score and memorization ("Why Train More?", Figure 1 and
its appendix: OOD-ness is a weak predictor of exposure, memorization a strong one). The
sign of a correlation only reflects each detector's orientation.

Design notes: float64 on the host; logits are [models, examples, classes] (the caller
picks the identity query); no loops over examples.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.special
import scipy.stats

__all__ = ["OodScores", "correlations", "energy", "msp", "out_model_scores"]


def msp(logits: np.ndarray) -> np.ndarray:
    """Max softmax probability over the last axis (float64)."""
    z = np.asarray(logits, np.float64)
    return np.exp(z.max(-1) - scipy.special.logsumexp(z, axis=-1))


def energy(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Energy −T·logsumexp(z / T) over the last axis (float64).

    Raises:
      ValueError: temperature is not positive.
    """
    if not temperature > 0:
        raise ValueError(f"temperature={temperature} must be > 0.")
    z = np.asarray(logits, np.float64)
    return -temperature * scipy.special.logsumexp(z / temperature, axis=-1)


class OodScores(NamedTuple):
    """Per-example OOD scores averaged over each example's OUT models (each [N]).

    Attributes:
      msp: mean MSP (higher = more in-distribution).
      energy: mean energy (lower = more in-distribution).
      num_out: number of OUT models each mean is over.
    """

    msp: np.ndarray
    energy: np.ndarray
    num_out: np.ndarray


def out_model_scores(logits: np.ndarray, keep: np.ndarray, temperature: float = 1.0) -> OodScores:
    """MSP and energy of every example, averaged over the models that did not train on it.

    Args:
      logits: [M, N, C] identity-query logits (or [M, N, A, C]: query 0 is used).
      keep: [M, N] bool, model m trained on example n.
      temperature: the energy's T.

    Returns:
      `OodScores`.

    Raises:
      ValueError: shapes disagree, or some example has no OUT model (its score is
        undefined; use more models or a lower pkeep).
    """
    logits = np.asarray(logits)
    if logits.ndim == 4:
        logits = logits[:, :, 0]
    keep = np.asarray(keep, bool)
    if logits.ndim != 3 or keep.shape != logits.shape[:2]:
        raise ValueError(
            f"logits {logits.shape} must be [M, N, C] (or [M, N, A, C]) with keep {keep.shape} "
            "= [M, N]."
        )
    out = ~keep
    num_out = out.sum(0)
    if (num_out == 0).any():
        raise ValueError(
            f"{int((num_out == 0).sum())} example(s) have no OUT model, so their OOD score is "
            "undefined; train more models or use pkeep < 1."
        )
    w = out / num_out
    return OodScores(
        msp=(msp(logits) * w).sum(0),
        energy=(energy(logits, temperature) * w).sum(0),
        num_out=num_out,
    )


def correlations(
    scores: dict[str, np.ndarray], against: dict[str, np.ndarray]
) -> dict[str, dict[str, dict[str, float]]]:
    """Spearman's ρ (and its p-value) of every score against every per-example quantity.

    Args:
      scores: name -> [N] (e.g. {"msp": ..., "energy": ...}).
      against: name -> [N] (e.g. {"privacy_score": ..., "memorization": ...}).

    Returns:
      {score: {quantity: {"spearman": ρ, "p_value": p, "n": N}}}; non-finite pairs are
      dropped per pair (an infinite privacy score ranks highest and is kept).
    """
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name, s in scores.items():
        s = np.asarray(s, np.float64)
        out[name] = {}
        for other, v in against.items():
            v = np.asarray(v, np.float64)
            if v.shape != s.shape:
                raise ValueError(f"{other} has shape {v.shape}, {name} has {s.shape}.")
            ok = ~np.isnan(s) & ~np.isnan(v)
            rho, p = scipy.stats.spearmanr(s[ok], v[ok])
            out[name][other] = {"spearman": float(rho), "p_value": float(p), "n": int(ok.sum())}
    return out

"""Who trains on what, with which labels: balanced keep masks, canaries and label-DP
randomized response, all pure functions of a seed (and of the model index)."""

from __future__ import annotations

import dataclasses

import numpy as np


def keep_mask(seed: int, num_models: int, num_examples: int, pkeep: float = 0.5) -> np.ndarray:
    """Balanced membership mask, as in the LiRA reference.

    Draws U ~ Uniform[M, N] from `seed`; model m trains on example n iff U[m, n] is
    among the `int(pkeep * M)` smallest values of column n. Every example is therefore
    IN for exactly `int(pkeep * M)` models and OUT for the rest. Following the
    reference code literally, `keep = U.argsort(0) < int(pkeep * M)`: column n of
    `U.argsort(0)` is a uniformly random permutation of the models, so this picks a
    uniformly random set of `int(pkeep * M)` models for each example.

    Args:
      seed: integer seed; the mask is a pure function of (seed, M, N, pkeep).
      num_models: M >= 2.
      num_examples: N >= 1.
      pkeep: fraction of models each example is IN for, in (0, 1).

    Returns:
      keep: [M, N] bool.
    """
    if num_models < 2:
        raise ValueError(
            f"num_models={num_models}: membership inference needs at least 2 models "
            "(one target and one shadow); use --num_models >= 2 (LiRA wants >= 16)."
        )
    if not 0.0 < pkeep < 1.0:
        raise ValueError(
            f"pkeep={pkeep} must be in (0, 1): the fraction of models that train on "
            "each example (0.5 for LiRA, 0.7 for Feldman & Zhang memorization)."
        )
    num_in = int(pkeep * num_models)
    if num_in < 1 or num_in >= num_models:
        raise ValueError(
            f"pkeep={pkeep} with num_models={num_models} gives {num_in} IN models per "
            "example; need at least one IN and one OUT. Raise num_models or change pkeep."
        )
    u = np.random.default_rng(seed).uniform(size=(num_models, num_examples))
    return u.argsort(0) < num_in


# -- Keep rules: how the keep mask of a run is drawn ----------------------------------------
#
# "balanced" (`keep_mask`, the default and every store written before rules existed) is
# balanced over all M models only; "pairs" (`paired_keep_mask`) is balanced over every
# even prefix of the models, so a run can grow model by model pair and be attacked at any
# even number of models (`experiments.budget`).
KEEP_RULES = ("balanced", "pairs")
_PAIR_STREAM = 0x9A12  # separates the pairs' draws from the other uses of the seed


def paired_keep_mask(seed: int, num_models: int, num_examples: int) -> np.ndarray:
    """Keep mask of complementary pairs: balanced over every even prefix of the models.

    Models come in pairs (2j, 2j + 1). For pair j, U ~ Uniform[N] is drawn from
    `np.random.default_rng([seed, 0x9A12, j])`; model 2j trains on example n iff U[n] is
    among the ⌊N/2⌋ smallest values (the ranks of U: `U.argsort().argsort() < N // 2`),
    and model 2j + 1 trains on exactly the other examples. Hence:

      * among the first k models, k even, every example is IN for exactly k/2 models and
        OUT for k/2 (pkeep = 0.5 for every even prefix);
      * every model trains on ⌊N/2⌋ (even index) or ⌈N/2⌉ (odd index) examples, so the
        steps per epoch, and with them each model, do not depend on M;
      * pair j's rows are a pure function of (seed, j, N): the first k models of a store of
        M models are those of a store of M' models (same config otherwise), and different
        pairs are independent.

    A target's partner (`partner`) is the one model whose membership is the complement of
    the target's; `lira_jax.shadow_budget` leaves it out of the target's shadows.

    Args:
      seed: integer seed.
      num_models: M, even and >= 2.
      num_examples: N >= 1.

    Returns:
      keep: [M, N] bool.
    """
    if num_models < 2 or num_models % 2:
        raise ValueError(
            f"num_models={num_models}: the 'pairs' keep rule needs an even number of models "
            ">= 2 (complementary pairs); use an even --num_models."
        )
    keep = np.empty((num_models, num_examples), bool)
    for j in range(num_models // 2):
        u = np.random.default_rng([int(seed), _PAIR_STREAM, j]).random(num_examples)
        first = u.argsort().argsort() < num_examples // 2
        keep[2 * j], keep[2 * j + 1] = first, ~first
    return keep


def partner(model: int | np.ndarray) -> int | np.ndarray:
    """The other model of a model's complementary pair (`paired_keep_mask`): m XOR 1."""
    return np.bitwise_xor(model, 1)


def check_keep_rule(rule: str, num_models: int, pkeep: float) -> None:
    """Raises ValueError unless `rule` is a keep rule that fits `num_models` and `pkeep`."""
    if rule not in KEEP_RULES:
        raise ValueError(f"keep_rule={rule!r}; choose one of {KEEP_RULES}.")
    if rule == "pairs" and (pkeep != 0.5 or num_models % 2):
        raise ValueError(
            f"keep_rule='pairs' needs pkeep=0.5 and an even num_models (complementary pairs), "
            f"got pkeep={pkeep}, num_models={num_models}."
        )


def keep_mask_of_rule(
    rule: str, seed: int, num_models: int, num_examples: int, pkeep: float = 0.5
) -> np.ndarray:
    """The [M, N] keep mask of a run: `keep_mask` for "balanced", `paired_keep_mask` for
    "pairs" (which needs pkeep = 0.5 and an even M)."""
    check_keep_rule(rule, num_models, pkeep)
    if rule == "pairs":
        return paired_keep_mask(seed, num_models, num_examples)
    return keep_mask(seed, num_models, num_examples, pkeep)


# -- Labels per model: canaries and label-DP randomized response ---------------------------
#
# Each model's labels are a pure function of (seed, model index), like its keep row: any
# process or block computes the same. Streams keep the draws independent of the keep mask
# (which uses `default_rng(seed)`) and of each other.
_CANARY_STREAM, _FLIP_STREAM, _RR_STREAM = 1, 2, 3


def _model_rng(seed: int, stream: int, model: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), stream, int(model)])


def _other_class(rng: np.random.Generator, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """A uniformly random class other than `labels` (elementwise); binary: the other class."""
    return (labels + rng.integers(1, num_classes, size=labels.shape)) % num_classes


def _check_labels(labels: np.ndarray, num_classes: int) -> np.ndarray:
    labels = np.asarray(labels)
    if num_classes < 2:
        raise ValueError(f"num_classes={num_classes}: label noise needs at least 2 classes.")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}.")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"labels range [{labels.min()}, {labels.max()}] is outside [0, {num_classes})."
        )
    return labels.astype(np.int32)


def canary_mask(seed: int, num_examples: int, num_canaries: int) -> np.ndarray:
    """The canaries: `num_canaries` examples of the pool, a uniformly random set fixed by seed.

    Args:
      seed: the run's seed (the set is a pure function of (seed, N, K)).
      num_examples: N, the pool size.
      num_canaries: K in [0, N]; 0 means no canaries.

    Returns:
      canary: [N] bool with exactly K True entries.
    """
    if not 0 <= num_canaries <= num_examples:
        raise ValueError(
            f"num_canaries={num_canaries} must be in [0, {num_examples}] (the pool size); "
            "0 turns canaries off."
        )
    canary = np.zeros(num_examples, bool)
    rng = np.random.default_rng([int(seed), _CANARY_STREAM])
    canary[rng.choice(num_examples, size=num_canaries, replace=False)] = True
    return canary


def rr_keep_probability(epsilon: float, num_classes: int) -> float:
    """Probability that randomized response keeps a label: e^ε / (e^ε + C − 1) (1 at ε = inf)."""
    epsilon = _check_epsilon(epsilon)
    if np.isinf(epsilon):
        return 1.0
    # 1 / (1 + (C - 1) e^-ε): no overflow for large ε.
    return float(1.0 / (1.0 + (num_classes - 1) * np.exp(-epsilon)))


def _check_epsilon(epsilon: float) -> float:
    epsilon = float(epsilon)
    if np.isnan(epsilon) or epsilon < 0:
        raise ValueError(
            f"label_dp_epsilon={epsilon} must be >= 0 (inf, or unset, turns label-DP off)."
        )
    return epsilon


def private_labels(
    seed: int,
    labels: np.ndarray,
    canary: np.ndarray,
    num_classes: int,
    model_indices: np.ndarray,
) -> np.ndarray:
    """Labels after the canary flips: what label-DP protects and what BLIA infers.

    For every model independently, each canary's label is replaced with probability 1/2 by a
    uniformly random other class (binary: the other class). The trained label of a canary is
    then independent of its features (binary: exactly uniform), so only memorization can
    reveal it. Non-canaries keep their true label.

    Args:
      seed: the run's seed.
      labels: [N] true labels in [0, C).
      canary: [N] bool (`canary_mask`).
      num_classes: C >= 2.
      model_indices: [B] global model indices; row b is a pure function of (seed, index).

    Returns:
      [B, N] int32.
    """
    labels = _check_labels(labels, num_classes)
    canary = np.asarray(canary, bool)
    if canary.shape != labels.shape:
        raise ValueError(f"canary has shape {canary.shape}; it must be [N] = {labels.shape}.")
    rows = []
    for m in np.asarray(model_indices).reshape(-1):
        rng = _model_rng(seed, _FLIP_STREAM, m)
        flip = canary & (rng.random(labels.shape) < 0.5)
        rows.append(np.where(flip, _other_class(rng, labels, num_classes), labels))
    return np.stack(rows).astype(np.int32) if rows else np.zeros((0,) + labels.shape, np.int32)


def randomized_response(
    seed: int,
    labels: np.ndarray,
    num_classes: int,
    epsilon: float,
    model_indices: np.ndarray,
) -> np.ndarray:
    """Label-DP by randomized response, per model: the labels each model trains on.

    Every label is kept with probability e^ε / (e^ε + C − 1) and otherwise replaced by a
    uniformly random other class (binary: flipped with probability 1 / (1 + e^ε)), which
    makes the released label ε-label-DP. ε = inf returns the labels unchanged.

    Args:
      seed: the run's seed.
      labels: [B, N] labels per model (the `private_labels` rows of `model_indices`).
      num_classes: C >= 2.
      epsilon: ε >= 0, or inf for off.
      model_indices: [B] global model indices; row b is a pure function of (seed, index, row).

    Returns:
      [B, N] int32.
    """
    labels = _check_labels(labels, num_classes)
    model_indices = np.asarray(model_indices).reshape(-1)
    if labels.ndim != 2 or labels.shape[0] != model_indices.shape[0]:
        raise ValueError(
            f"labels has shape {labels.shape}; it must be [B, N] with B = "
            f"{model_indices.shape[0]} (one row per model index)."
        )
    keep_p = rr_keep_probability(epsilon, num_classes)
    if keep_p == 1.0:
        return labels.copy()
    rows = []
    for m, row in zip(model_indices, labels, strict=True):
        rng = _model_rng(seed, _RR_STREAM, m)
        replace = rng.random(row.shape) >= keep_p
        rows.append(np.where(replace, _other_class(rng, row, num_classes), row))
    return np.stack(rows).astype(np.int32) if rows else labels.copy()


@dataclasses.dataclass(frozen=True)
class ModelLabels:
    """The labels of a block of models (see `model_labels`).

    Attributes:
      canary: [N] bool, the run's canaries.
      private_labels: [B, N] int32, after the canary flips (the BLIA's ground truth).
      train_labels: [B, N] int32, after randomized response (what each model trains on).
    """

    canary: np.ndarray
    private_labels: np.ndarray
    train_labels: np.ndarray


def label_noise_enabled(num_canaries: int, label_dp_epsilon: float | None) -> bool:
    """Whether labels differ per model (canaries or label-DP on)."""
    eps = float("inf") if label_dp_epsilon is None else _check_epsilon(label_dp_epsilon)
    return num_canaries > 0 or not np.isinf(eps)


def model_labels(
    seed: int,
    labels: np.ndarray,
    num_classes: int,
    model_indices: np.ndarray,
    *,
    num_canaries: int = 0,
    label_dp_epsilon: float | None = None,
) -> ModelLabels:
    """Canaries, then canary flips, then randomized response, for the given models.

    Args:
      seed: the run's seed.
      labels: [N] true labels.
      num_classes: C.
      model_indices: [B] global model indices (all models: `np.arange(M)`).
      num_canaries: K (0: no canaries).
      label_dp_epsilon: ε of randomized response (None or inf: off).

    Returns:
      `ModelLabels`; with both off, every row equals `labels`.
    """
    labels = _check_labels(labels, num_classes)
    eps = float("inf") if label_dp_epsilon is None else label_dp_epsilon
    canary = canary_mask(seed, labels.shape[0], num_canaries)
    private = private_labels(seed, labels, canary, num_classes, model_indices)
    train = randomized_response(seed, private, num_classes, eps, model_indices)
    return ModelLabels(canary=canary, private_labels=private, train_labels=train)

"""The data-augmentation attack (Choquette-Choo et al. 2021) and a label-only LiRA.

Design notes: the feature of a (model, example) pair is its 0/1 correctness vector over
the store's A queries (e.g. `ring1+rot9`: translations by one pixel and rotations by up to
9 degrees, `lira_jax.data.augment.query_set`): a model labels its training examples
correctly under more perturbations. Three scorers of the target's vector:

  * count (`augmentation_count_attack`): the number of correct labels. Its operating point
    is a threshold tuned on the shadow models' (model, example) pairs — the count that
    maximises TPR − FPR there — as Choquette-Choo et al. tune theirs on a source model.
  * attack model (`augmentation_model_attack`): Choquette-Choo et al.'s learned attack, a
    small MLP (A → hidden → 1) trained on shadow models' vectors with their IN/OUT truth
    and applied to the target's, as they train theirs on a source model and apply it to
    the target. The targets are split into folds; a fold's MLP trains on the models
    outside the fold (below). The vectors are binary, so the training set is summarised
    exactly by the IN and OUT counts of each distinct vector (pattern); the weighted
    cross-entropy over the P ≤ 2^A patterns equals the one over the pairs, and all folds'
    MLPs train at once (vmapped, full batch, Adam, fixed steps). Classes are weighted
    equally, so score ≥ 0 (P(IN) ≥ ½) is the operating point.
  * label-only LiRA (`augmentation_lira_attack`, beyond the papers): per example and
    query, P(correct | IN) and P(correct | OUT) estimated from the shadows' counts with a
    Beta(α, β) prior, (k + α) / (n + α + β), so 0 and 1 stay finite; the score is the sum
    over queries of the log-likelihood ratio of the target's correctness (queries treated
    as independent given membership). Score ≥ 0 is the operating point.

Shadow sets (`lira_jax.attacks.shadow_sets`):
  * count threshold and LiRA: per target, the equal-size IN/OUT sets of every attack (for
    a balanced keep mask all models but t and one model dropped from the group t is not
    in, so the sizes do not depend on t's membership); the threshold pools them over
    examples, LiRA uses them per example. Totals over all M models are computed once and
    each target's two removed values subtracted (`shadow_group_sums`).
  * attack model: per fold F of `fold_size` targets (default M // 8), the models outside
    F with `equalized_shadow_mask(keep, F, seed)` (every example count_in − |F| IN and
    count_out − |F| OUT pairs), as Shokri's attack does. Why not one MLP per target: the
    MLP maps the few distinct vectors to few values, so the pooled ROC compares members
    and non-members of different targets that share a vector, and two targets' MLPs then
    differ only by each other's pairs — a member pair of target t is an IN pair in the
    training set of another target u, and u's non-member pair an OUT pair in t's, which
    tips the near-ties against the truth: on membership-free stores (M = 64, 8 seeds) AUC
    0.4974 ± 0.0007, with folds of 8 targets 0.4997 ± 0.0006 (docs/design.md, "Augmentation attack
    model: one MLP per fold").
    Targets in one fold share one MLP (exact ties); the MLPs of different folds differ by
    many models' pairs.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lira_jax.attacks import shadow_sets
from lira_jax.attacks.bank import AttackOutput, AttackUndefined
from lira_jax.attacks.label_only.labels import label_bank

_MLP_CHUNK = 16  # most attack models trained at once

__all__ = [
    "augmentation_count_attack",
    "augmentation_lira_attack",
    "augmentation_model_attack",
]


def _setup(bank, targets):
    labels_only = label_bank(bank)
    return labels_only, labels_only.check_targets(targets)


def augmentation_count_attack(bank, targets: np.ndarray, *, seed: int = 0) -> AttackOutput:
    """Number of queries the target labels correctly; threshold tuned on shadow models.

    Shadow sets: every model but the target and one equalising model per example (see the
    module docstring); they only set the operating point, not the scores.

    Args:
      bank: a `LabelBank` or a `SignalBank` with predicted labels.
      targets: [T] target model indices.
      seed: chooses the equalising models.

    Returns:
      `AttackOutput` with scores [T, N] = correct count in 0..A, threshold [T, 1] the
      shadow-tuned count, extras {"mean_threshold"}.
    """
    labels_only, targets = _setup(bank, targets)
    a = labels_only.num_queries
    counts = labels_only.correct.sum(axis=2)  # [M, N]
    onehot = counts[:, :, None] == np.arange(a + 1)  # [M, N, A+1]
    hist_in, _, hist_out, _ = shadow_sets.shadow_group_sums(onehot, labels_only, targets, seed)
    hist_in, hist_out = hist_in.sum(axis=1), hist_out.sum(axis=1)  # [T, A+1]
    if np.any(hist_in.sum(1) == 0) or np.any(hist_out.sum(1) == 0):
        raise AttackUndefined(
            "label_only_augmentation_count: a target's shadows have no IN or no OUT pair; "
            "train more shadow models."
        )
    # Member iff count >= k: TPR(k) = P(count >= k | IN), k = 0..A.
    tpr = hist_in[:, ::-1].cumsum(1)[:, ::-1] / hist_in.sum(1, keepdims=True)
    fpr = hist_out[:, ::-1].cumsum(1)[:, ::-1] / hist_out.sum(1, keepdims=True)
    threshold = np.argmax(tpr - fpr, axis=1).astype(np.float64)[:, None]
    return AttackOutput(
        scores=counts[targets].astype(np.float64),
        threshold=threshold,
        extras={"mean_threshold": float(threshold.mean())},
    )


def augmentation_lira_attack(
    bank, targets: np.ndarray, *, seed: int = 0, prior: tuple[float, float] = (1.0, 1.0)
) -> AttackOutput:
    """Label-only LiRA: summed per-query log-likelihood ratios of the correctness vector.

    Shadow sets: per example, the IN and OUT shadows of equal, membership-independent size
    (all models but the target and one equalising model).

    Args:
      bank: a `LabelBank` or a `SignalBank` with predicted labels.
      targets: [T] target model indices.
      seed: chooses the equalising models.
      prior: (α, β) of the Beta prior on P(correct) in each group (α = β = 1: Laplace).

    Returns:
      `AttackOutput` with scores [T, N] the log-likelihood ratio, threshold 0.
    """
    alpha, beta = (float(p) for p in prior)
    if not (alpha > 0 and beta > 0):
        raise ValueError(f"prior={prior} must be two positive numbers (α, β) of a Beta prior.")
    labels_only, targets = _setup(bank, targets)
    correct = labels_only.correct
    k_in, n_in, k_out, n_out = shadow_sets.shadow_group_sums(correct, labels_only, targets, seed)
    p_in = (k_in + alpha) / (n_in[..., None] + alpha + beta)
    p_out = (k_out + alpha) / (n_out[..., None] + alpha + beta)
    c = correct[targets]
    llr = np.where(c, np.log(p_in) - np.log(p_out), np.log1p(-p_in) - np.log1p(-p_out))
    return AttackOutput(scores=llr.sum(axis=2), threshold=0.0)


def _patterns(correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct correctness vectors: (ids [M, N] int64, patterns [P, A] bool)."""
    m, n, a = correct.shape
    packed = np.packbits(correct, axis=2)  # [M, N, ceil(A/8)]
    width = packed.shape[2]
    keys = np.ascontiguousarray(packed.reshape(m * n, width)).view(np.dtype((np.void, width)))
    uniq, ids = np.unique(keys.ravel(), return_inverse=True)
    rows = np.frombuffer(uniq.tobytes(), np.uint8).reshape(len(uniq), width)
    return ids.reshape(m, n).astype(np.int64), np.unpackbits(rows, axis=1, count=a).astype(bool)


def _fold_pattern_counts(ids, bank_or_keep, folds, seed, num_patterns):
    """IN and OUT counts [F, P] of each pattern among each fold's shadow pairs
    (`bank_or_keep`: a bank, or its keep mask [M, N])."""
    keep = getattr(bank_or_keep, "keep", bank_or_keep)
    counts_in = np.empty((len(folds), num_patterns), np.int64)
    counts_out = np.empty_like(counts_in)
    for f, fold in enumerate(folds):
        use = shadow_sets.fold_shadow_mask(bank_or_keep, fold, seed)
        counts_in[f] = np.bincount(ids[use & keep], minlength=num_patterns)
        counts_out[f] = np.bincount(ids[use & ~keep], minlength=num_patterns)
    return counts_in, counts_out


def _target_folds(targets: np.ndarray, fold_size: int) -> list[np.ndarray]:
    """Contiguous folds of at most `fold_size` targets, in order."""
    return [targets[i : i + fold_size] for i in range(0, len(targets), fold_size)]


@functools.partial(jax.jit, static_argnames=("hidden", "steps"))
def _train_mlps(keys, features, w_in, w_out, *, hidden, steps, learning_rate, l2):
    """One MLP per target on weighted patterns; returns the logits of every pattern [T, P]."""
    num_features = features.shape[1]
    optimizer = optax.adam(learning_rate)

    def init(key):
        k1, k2 = jax.random.split(key)
        return {
            "w1": jax.random.normal(k1, (num_features, hidden)) * jnp.sqrt(2.0 / num_features),
            "b1": jnp.zeros(hidden),
            "w2": jax.random.normal(k2, (hidden,)) / jnp.sqrt(hidden),
            "b2": jnp.zeros(()),
        }

    def logits(p):
        return jax.nn.relu(features @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]

    def loss(p, wi, wo):
        z = logits(p)
        data = jnp.sum(wi * jax.nn.softplus(-z) + wo * jax.nn.softplus(z))
        return data + l2 * (jnp.sum(p["w1"] ** 2) + jnp.sum(p["w2"] ** 2))

    def fit(key, wi, wo):
        params = init(key)

        def step(carry, _):
            p, s = carry
            g = jax.grad(loss)(p, wi, wo)
            updates, s = optimizer.update(g, s, p)
            return (optax.apply_updates(p, updates), s), None

        (params, _), _ = jax.lax.scan(step, (params, optimizer.init(params)), None, steps)
        return logits(params)

    return jax.vmap(fit)(keys, w_in, w_out)


def augmentation_model_attack(
    bank,
    targets: np.ndarray,
    *,
    seed: int = 0,
    fold_size: int | None = None,
    hidden: int = 32,
    steps: int = 300,
    learning_rate: float = 0.02,
    l2: float = 1e-4,
) -> AttackOutput:
    """Choquette-Choo et al.'s attack model: an MLP on the correctness vector.

    Shadow sets: the targets are split into folds of `fold_size`; a fold's MLP trains on
    the (model, example) pairs of the models outside the fold, with equal-size IN/OUT sets
    per example (`shadow_sets.equalized_shadow_mask`), pooled over examples.

    Args:
      bank: a `LabelBank` or a `SignalBank` with predicted labels.
      targets: [T] target model indices.
      seed: chooses the equal-size shadow sets and the MLPs' initialisation.
      fold_size: targets per fold (default max(1, M // 8): every group keeps at least
        3/4 of its models for a balanced mask with pkeep 0.5); 1 = one MLP per target.
      hidden: hidden units of the MLP.
      steps: full-batch Adam steps.
      learning_rate: Adam's learning rate.
      l2: weight penalty on the MLP's weights.

    Returns:
      `AttackOutput` with scores [T, N] the MLP's logit of P(IN) (classes weighted
      equally), threshold 0, extras {"num_patterns", "num_folds"}.

    Raises:
      ValueError: on non-positive fold_size, hidden, steps or learning_rate, or a negative
        l2.
      AttackUndefined: a fold's shadows lack IN or OUT pairs.
    """
    if hidden < 1 or steps < 1 or not learning_rate > 0 or l2 < 0:
        raise ValueError(
            f"hidden={hidden}, steps={steps} must be >= 1, learning_rate={learning_rate} > 0 "
            f"and l2={l2} >= 0."
        )
    labels_only, targets = _setup(bank, targets)
    fold_size = max(1, labels_only.num_models // 8) if fold_size is None else fold_size
    if fold_size < 1:
        raise ValueError(f"fold_size={fold_size} must be >= 1.")
    folds = _target_folds(targets, fold_size)
    ids, patterns = labels_only.cached(("patterns",), lambda: _patterns(labels_only.correct))
    counts_in, counts_out = _fold_pattern_counts(ids, labels_only, folds, seed, len(patterns))
    total_in, total_out = counts_in.sum(1, keepdims=True), counts_out.sum(1, keepdims=True)
    if np.any(total_in == 0) or np.any(total_out == 0):
        raise AttackUndefined(
            "label_only_augmentation_model: a fold's shadows have no IN or no OUT pair; "
            "train more shadow models (or pass a smaller fold_size)."
        )
    # Few shapes (patterns padded to a power of two with weight 0, folds in chunks of a
    # power of two) so that one compilation serves many stores and target counts.
    num = len(patterns)
    width = max(8, 1 << (num - 1).bit_length())
    features = np.zeros((width, patterns.shape[1]), np.float32)
    features[:num] = 2.0 * patterns - 1.0
    w_in = np.zeros((len(folds), width), np.float32)
    w_out = np.zeros_like(w_in)
    w_in[:, :num], w_out[:, :num] = counts_in / total_in, counts_out / total_out
    pattern_logits = np.empty((len(folds), num))
    # MLPs per call: the folds rounded up to a power of two, at most _MLP_CHUNK (a single
    # fold trains one MLP, not _MLP_CHUNK copies of it; at most 5 compiled sizes).
    chunk = min(_MLP_CHUNK, 1 << (len(folds) - 1).bit_length())
    for f0 in range(0, len(folds), chunk):
        rows = np.arange(f0, f0 + chunk).clip(max=len(folds) - 1)
        keys = jax.vmap(lambda f: jax.random.fold_in(jax.random.PRNGKey(seed), f))(
            jnp.asarray(rows)
        )
        out = _train_mlps(
            keys,
            jnp.asarray(features),
            jnp.asarray(w_in[rows]),
            jnp.asarray(w_out[rows]),
            hidden=int(hidden),
            steps=int(steps),
            learning_rate=float(learning_rate),
            l2=float(l2),
        )
        stop = min(len(folds), f0 + chunk)
        pattern_logits[f0:stop] = np.asarray(out, np.float64)[: stop - f0, :num]
    fold_of = np.repeat(np.arange(len(folds)), [len(f) for f in folds])
    scores = pattern_logits[fold_of[:, None], ids[targets]]
    return AttackOutput(
        scores=scores,
        threshold=0.0,
        extras={"num_patterns": len(patterns), "num_folds": len(folds)},
    )
